//! A complete handoff service: `GET /hello` answers its own setting, `[app]
//! greeting` (or HANDOFF__APP__GREETING). `cargo run --example hello`.
use actix_web::{App, HttpResponse, web};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Hello {
    greeting: String,
}

impl Default for Hello {
    fn default() -> Self {
        let greeting = "hello".to_owned();
        Self { greeting }
    }
}

impl handoff::AppSettings for Hello {
    fn validate(&self) -> Result<(), handoff::SettingError> {
        if self.greeting.is_empty() {
            return Err(handoff::SettingError::new("greeting", "", "is empty"));
        }
        Ok(())
    }
}

async fn hello(settings: web::Data<Hello>) -> HttpResponse {
    HttpResponse::Ok().body(settings.greeting.clone())
}

fn main() -> std::process::ExitCode {
    handoff::Service::with_settings::<Hello>().run(|_| {
        App::new()
            .configure(handoff::json_errors)
            .service(handoff::get("/hello", hello))
    })
}
