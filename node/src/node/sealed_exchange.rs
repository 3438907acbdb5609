//! Sealed phone exchanges, driven: open the request with the node's sealing key, run the
//! verify or upload inside, hold the answer per [`super::phone_timing`], seal it back.
//!
//! Everything a proxy could tell real from decoy by is inside the seal: the body, the
//! node's status (`200` outside for every opened request), the answer's length (one per
//! route) and, through the timing hold, the time it took.

use std::time::Instant;

use ephemera_proto::api::{ErrorBody, VerifyRequest};
use ephemera_proto::sealed::{SealedRoute, SealingKeyAnnouncement};
use ephemera_proto::token::TokenVerifyRequest;

use crate::api::error::ApiError;

use super::{Answered, Node};

/// The inner answer before sealing: status, body, and whether it was a real success.
struct InnerAnswer {
    status: u16,
    body: Vec<u8>,
    answered: Answered,
}

impl InnerAnswer {
    /// A refusal: held like a decoy, so a wrong code does not answer faster than a right one.
    fn refused(error: &ApiError, max_body: usize) -> Self {
        if error.logged_per_request() {
            tracing::error!(error = %error, "sealed request failed");
        }
        InnerAnswer {
            status: error.status().as_u16(),
            body: error_body_within(error.body(), max_body),
            answered: Answered::Decoy,
        }
    }
}

impl Node {
    /// The node's sealing key, signed by its batch key (`GET /v1/sealing-key`).
    pub fn sealing_key_announcement(&self) -> SealingKeyAnnouncement {
        let keys = self.keys();
        keys.batch.announce_sealing_key(&keys.sealing.public_key())
    }

    /// Answers a sealed `route` request: the sealed answer bytes, always of the route's one
    /// size.
    ///
    /// # Errors
    /// [`ApiError::Sealed`] when the body does not open (sealed to another key, altered,
    /// truncated): answered in clear, before anything inside is known.
    pub async fn sealed_exchange(
        &self,
        route: SealedRoute,
        sealed: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        let started = Instant::now();
        let (inner, sealer) = self
            .keys()
            .sealing
            .open_request(route, sealed)
            .map_err(ApiError::Sealed)?;
        let max_body = route.inner_response_size() - 4;
        let answer = match route {
            SealedRoute::Verify => self.sealed_verify(&inner, max_body).await,
            SealedRoute::TokenVerify => self.sealed_token_verify(&inner, max_body).await,
            SealedRoute::Upload => match self.upload_classified(&inner).await {
                Ok((response, answered)) => InnerAnswer {
                    status: 200,
                    body: response.to_padded_json(),
                    answered,
                },
                Err(e) => InnerAnswer::refused(&e, max_body),
            },
        };
        self.inner
            .phone_timing
            .settle(route, started, answer.answered)
            .await;
        sealer
            .seal(answer.status, &answer.body, &mut rand::rng())
            .map_err(|_| ApiError::Internal)
    }

    async fn sealed_verify(&self, inner: &[u8], max_body: usize) -> InnerAnswer {
        let request = match serde_json::from_slice::<VerifyRequest>(inner) {
            Ok(request) => request,
            Err(e) => {
                return InnerAnswer::refused(&ApiError::MalformedJson(e.to_string()), max_body);
            }
        };
        match self.verify(&request).await {
            Ok(response) => InnerAnswer {
                status: 200,
                body: response.to_padded_json(),
                answered: if request.decoy {
                    Answered::Decoy
                } else {
                    Answered::Real
                },
            },
            Err(e) => InnerAnswer::refused(&e, max_body),
        }
    }

    async fn sealed_token_verify(&self, inner: &[u8], max_body: usize) -> InnerAnswer {
        let request = match serde_json::from_slice::<TokenVerifyRequest>(inner) {
            Ok(request) => request,
            Err(e) => {
                return InnerAnswer::refused(&ApiError::MalformedJson(e.to_string()), max_body);
            }
        };
        let answered = if request.decoy {
            Answered::Decoy
        } else {
            Answered::Real
        };
        match self.token_verify(request).await {
            Ok(response) => InnerAnswer {
                status: 200,
                body: response.to_padded_json(),
                answered,
            },
            Err(e) => InnerAnswer::refused(&e, max_body),
        }
    }
}

/// The JSON error, its message shortened (at a character boundary) until it fits `max`.
fn error_body_within(mut body: ErrorBody, max: usize) -> Vec<u8> {
    loop {
        let bytes = serde_json::to_vec(&body).expect("plain JSON");
        if bytes.len() <= max || body.message.is_empty() {
            return bytes;
        }
        let excess = bytes.len() - max;
        let mut cut = body.message.len().saturating_sub(excess.max(1));
        while !body.message.is_char_boundary(cut) {
            cut -= 1;
        }
        body.message.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any message fits the inner answer, as JSON that still parses.
        #[test]
        fn error_bodies_fit_their_route(message in ".{0,2000}", max in 64usize..1100) {
            let body = ErrorBody { error: "malformed-json".to_owned(), message };
            let bytes = error_body_within(body, max);
            prop_assert!(bytes.len() <= max);
            let parsed: ErrorBody = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(parsed.error, "malformed-json");
        }
    }
}
