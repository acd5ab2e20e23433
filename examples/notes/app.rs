//! The notes service's application: settings, a SQLite connection pool
//! built from them, and the handlers. Shared by its two `main`s, which are
//! all that differs between running it on actix-web's `HttpServer`
//! (`actix.rs`) and on handoff (`handoff.rs`).

use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use r2d2_sqlite::SqliteConnectionManager;
use serde::{Deserialize, Serialize};

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// The service's settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The SQLite database file (created if missing).
    pub database: PathBuf,
    /// Connections in the pool.
    pub pool_size: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database: PathBuf::from("notes.db"),
            pool_size: 4,
        }
    }
}

impl Settings {
    /// What deserializing cannot check: which key is wrong, and why.
    pub fn check(&self) -> Result<(), (&'static str, String, &'static str)> {
        if !(1..=64).contains(&self.pool_size) {
            return Err(("pool_size", self.pool_size.to_string(), "must be 1 to 64"));
        }
        if self.database.as_os_str().is_empty() {
            return Err(("database", String::new(), "must name a file"));
        }
        Ok(())
    }
}

/// The pool, with the schema in place and WAL mode on (readers never wait
/// for the writer). Fails, naming the file, if the database cannot be
/// opened: at least one connection is made before this returns.
pub fn open_pool(settings: &Settings) -> Result<Pool, String> {
    let manager = SqliteConnectionManager::file(&settings.database).with_init(|c| {
        c.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS notes (
                 id INTEGER PRIMARY KEY,
                 body TEXT NOT NULL,
                 created TEXT NOT NULL DEFAULT (datetime('now'))
             );",
        )
    });
    r2d2::Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .build(manager)
        .map_err(|e| format!("cannot open {}: {e}", settings.database.display()))
}

/// `/api`: the notes.
pub fn api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/notes")
            .route(web::post().to(create))
            .route(web::get().to(latest)),
    )
    .route("/notes/{id}", web::get().to(read))
    .route("/stats", web::get().to(stats))
    .route("/report", web::get().to(report));
}

/// `POST /api/notes`: stores the body as a note; answers 201 with the note
/// as stored (so a client sees exactly what was written) and its location.
async fn create(pool: web::Data<Pool>, body: String) -> actix_web::Result<HttpResponse> {
    let stored = body.clone();
    let id = web::block(move || -> Result<i64, String> {
        let conn = pool.get().map_err(|e| e.to_string())?;
        conn.execute("INSERT INTO notes (body) VALUES (?1)", [&stored])
            .map_err(|e| e.to_string())?;
        Ok(conn.last_insert_rowid())
    })
    .await?
    .map_err(actix_web::error::ErrorServiceUnavailable)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/notes/{id}")))
        .content_type("text/plain; charset=utf-8")
        .body(body))
}

/// `GET /api/notes/{id}`.
async fn read(pool: web::Data<Pool>, id: web::Path<i64>) -> actix_web::Result<HttpResponse> {
    let id = id.into_inner();
    let body = web::block(move || -> Result<Option<String>, String> {
        let conn = pool.get().map_err(|e| e.to_string())?;
        let mut query = conn
            .prepare_cached("SELECT body FROM notes WHERE id = ?1")
            .map_err(|e| e.to_string())?;
        let mut rows = query.query([id]).map_err(|e| e.to_string())?;
        match rows.next().map_err(|e| e.to_string())? {
            Some(row) => row.get(0).map(Some).map_err(|e| e.to_string()),
            None => Ok(None),
        }
    })
    .await?
    .map_err(actix_web::error::ErrorServiceUnavailable)?;
    Ok(match body {
        Some(body) => HttpResponse::Ok().body(body),
        None => HttpResponse::NotFound().body(format!("no note {id}\n")),
    })
}

#[derive(Serialize)]
struct Note {
    id: i64,
    body: String,
}

/// `GET /api/notes`: the ten latest.
async fn latest(pool: web::Data<Pool>) -> actix_web::Result<HttpResponse> {
    let notes = web::block(move || -> Result<Vec<Note>, String> {
        let conn = pool.get().map_err(|e| e.to_string())?;
        let mut query = conn
            .prepare_cached("SELECT id, body FROM notes ORDER BY id DESC LIMIT 10")
            .map_err(|e| e.to_string())?;
        query
            .query_map([], |row| {
                Ok(Note {
                    id: row.get(0)?,
                    body: row.get(1)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(|e| e.to_string())
    })
    .await?
    .map_err(actix_web::error::ErrorServiceUnavailable)?;
    Ok(HttpResponse::Ok().json(notes))
}

/// How many notes there are, and which process counted them.
async fn count(pool: web::Data<Pool>) -> actix_web::Result<HttpResponse> {
    let notes = web::block(move || -> Result<i64, String> {
        let conn = pool.get().map_err(|e| e.to_string())?;
        conn.query_row("SELECT count(*) FROM notes", [], |row| row.get(0))
            .map_err(|e| e.to_string())
    })
    .await?
    .map_err(actix_web::error::ErrorServiceUnavailable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "notes": notes,
        "pid": std::process::id(),
    })))
}

/// `GET /api/stats`.
async fn stats(pool: web::Data<Pool>) -> actix_web::Result<HttpResponse> {
    count(pool).await
}

#[derive(Deserialize)]
struct ReportQuery {
    #[serde(default)]
    delay_ms: u64,
}

/// `GET /api/report?delay_ms=N`: the count after a pause of up to 10 s, as
/// a slow report would take.
async fn report(
    pool: web::Data<Pool>,
    query: web::Query<ReportQuery>,
) -> actix_web::Result<HttpResponse> {
    tokio::time::sleep(Duration::from_millis(query.delay_ms.min(10_000))).await;
    count(pool).await
}

/// The service's own 404.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("nothing here\n")
}
