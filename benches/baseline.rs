//! The baseline the cheap paths are measured against: a bare actix-web server
//! whose one handler does one Redis GET through a `ConnectionManager` (the same
//! client, runtime and worker count as census-login, nothing else: no
//! middleware, no JSON parsing, no logging). `tests/load/capacity.sh` drives it
//! and the service with the same k6 load in one run and reports ratios.
//!
//! `baseline --listen 127.0.0.1:PORT --redis redis://127.0.0.1:PORT/`
//! (under `cargo bench`, without `--listen`, it only says how to use it).

use actix_web::{App, HttpResponse, HttpServer, web};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

async fn get(conn: web::Data<ConnectionManager>) -> HttpResponse {
    let mut conn = conn.get_ref().clone();
    match conn.get::<_, Option<String>>("baseline:key").await {
        Ok(v) => HttpResponse::Ok()
            .content_type("application/json")
            .body(format!("{{\"found\":{}}}", v.is_some())),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(listen), Some(redis_url)) = (arg(&args, "--listen"), arg(&args, "--redis")) else {
        eprintln!(
            "baseline: a server, not a criterion bench; tests/load/capacity.sh runs it \
             (baseline --listen ADDR --redis URL)"
        );
        return Ok(());
    };
    actix_web::rt::System::new().block_on(async move {
        let client = redis::Client::open(redis_url.as_str()).map_err(std::io::Error::other)?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(std::io::Error::other)?;
        let conn = web::Data::new(conn);
        eprintln!("baseline: listening on {listen}");
        HttpServer::new(move || {
            App::new()
                .app_data(conn.clone())
                .route("/baseline", web::get().to(get))
        })
        .keep_alive(std::time::Duration::from_secs(75))
        .bind(listen)?
        .run()
        .await
    })
}
