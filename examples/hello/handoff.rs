//! A complete handoff service: `GET /hello` answers its own setting, `[app]
//! greeting` (or HANDOFF__APP__GREETING). `cargo run --example hello`.

mod app;

use actix_web::App;

impl handoff::AppSettings for app::Hello {
    fn validate(&self) -> Result<(), handoff::SettingError> {
        if self.greeting.is_empty() {
            return Err(handoff::SettingError::new("greeting", "", "is empty"));
        }
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    handoff::Service::with_settings::<app::Hello>().run(|_| {
        App::new()
            .configure(handoff::json_errors)
            .service(handoff::get("/hello", app::hello))
    })
}
