//! The hello service's application: one setting and one route. Shared by
//! its two `main`s: `handoff.rs` and `actix.rs` (the same on actix-web's
//! `HttpServer`, which the cost benchmark compares with).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hello {
    pub greeting: String,
}

impl Default for Hello {
    fn default() -> Self {
        let greeting = "hello".to_owned();
        Self { greeting }
    }
}

pub async fn hello(settings: web::Data<Hello>) -> HttpResponse {
    HttpResponse::Ok().body(settings.greeting.clone())
}
