//! The browser login page (`src/web/`), embedded in the binary at build time
//! so that one artifact ships everything.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "src/web/"]
struct Assets;

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn serve(path: &str) -> Option<HttpResponse> {
    let file = Assets::get(path)?;
    Some(
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, content_type(path)))
            // Revalidate every time: assets change with each release.
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((
                header::ETAG,
                format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..8])),
            ))
            .body(file.data.into_owned()),
    )
}

pub async fn index(req: HttpRequest) -> HttpResponse {
    serve("index.html").unwrap_or_else(|| super::not_found_sync(&req))
}

pub async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = format!("assets/{}", path.into_inner());
    if path.contains("..") {
        return super::not_found_sync(&req);
    }
    serve(&path).unwrap_or_else(|| super::not_found_sync(&req))
}
