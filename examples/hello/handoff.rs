//! A complete handoff service: `GET /hello` answers its own setting, `[app]
//! greeting` (or HANDOFF__APP__GREETING). `cargo run --example hello`.

mod app;

use actix_web::App;

impl actix_handoff::AppSettings for app::Hello {
    fn validate(&self) -> Result<(), actix_handoff::SettingError> {
        if self.greeting.is_empty() {
            return Err(actix_handoff::SettingError::new("greeting", "", "is empty"));
        }
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    actix_handoff::Service::with_settings::<app::Hello>().run(|_| {
        App::new()
            .configure(actix_handoff::json_errors)
            .service(actix_handoff::get("/hello", app::hello))
    })
}
