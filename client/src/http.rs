//! An optional blocking HTTP transport (feature `http`) that speaks the node API.
//!
//! `GET /v1/batches?after=<cursor>` (JSON `BatchIndex`), `GET /v1/batches/{id}` (signed
//! batch bytes, streamed into the matcher), `POST /v1/verify` (padded JSON `VerifyRequest`),
//! `POST /v1/uploads` (postcard `UploadRequest`, `application/octet-stream`). It makes no
//! protocol decision: it sends what [`Phone::poll_request`] gives and hands the answer back.
//! TLS is rustls with the `ring` provider only (no aws-lc), with the Mozilla roots.
//!
//! Without this feature the app moves the bytes itself.

use std::time::Duration;

use ephemera_proto::UnixTime;

use crate::error::ClientError;
use crate::phone::Phone;
use crate::request::{Method, Request};
use crate::store::Store;

/// A node's base URL and a connection pool.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    base_url: String,
    agent: ureq::Agent,
}

impl HttpTransport {
    /// A transport for the node at `base_url` (e.g. `https://node.example`), with a 60 s
    /// timeout per request.
    pub fn new(base_url: impl Into<String>) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            // Error statuses are answers the phone interprets, not transport failures.
            .http_status_as_error(false)
            .build();
        HttpTransport {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            agent: config.into(),
        }
    }

    /// Sends one request and hands its answer (or failure) to `phone`.
    ///
    /// # Errors
    /// Whatever the phone returns for the answer.
    pub fn send<S: Store>(
        &self,
        phone: &mut Phone<S>,
        now: UnixTime,
        request: Request,
    ) -> Result<(), ClientError> {
        let url = format!("{}{}", self.base_url, request.path);
        let sent = match request.method {
            Method::Get => self.agent.get(&url).call(),
            Method::Post => self
                .agent
                .post(&url)
                .header(
                    "content-type",
                    request.content_type.unwrap_or("application/octet-stream"),
                )
                .send(&request.body[..]),
        };
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                // The node's clock confirms a forward jump of the phone's (retention).
                let date = response
                    .headers()
                    .get("date")
                    .and_then(|v| v.to_str().ok())
                    .and_then(crate::phone::http_date);
                let mut reader = response
                    .into_body()
                    .into_with_config()
                    .limit(u64::MAX)
                    .reader();
                phone.handle_response_reader(now, request.id, status, &mut reader)?;
                if let Some(date) = date {
                    phone.confirm_time(now, date)?;
                }
                Ok(())
            }
            Err(_) => phone.handle_failure(now, request.id),
        }
    }

    /// Sends every queued request, and those their answers queue, until none is left.
    ///
    /// # Errors
    /// The first error the phone returns; the remaining requests stay queued.
    pub fn drive<S: Store>(&self, phone: &mut Phone<S>, now: UnixTime) -> Result<(), ClientError> {
        while let Some(request) = phone.poll_request() {
            self.send(phone, now, request)?;
        }
        Ok(())
    }
}
