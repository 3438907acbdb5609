//! Venues, driven (issue 20): the authority's venue key, published signed by its authority
//! key, and venues made for a case worker or an admin (`crate::venue`). A venue is made in
//! memory and handed over: the store, the logs and the audit trail hold nothing of it but
//! the fact that one was made, by whom and when.

use ephemera_node_core::keys::venue_key;
use ephemera_proto::audit::{AuditAction, AuditActor, AuditOutcome};
use ephemera_proto::sealed::SealingPublicKey;
use ephemera_proto::venue::{VenueError, VenueKeyAnnouncement};

use super::{Need, Node};
use crate::api::error::ApiError;
use crate::api::types::{CreateVenueRequest, CreatedVenue};
use crate::clock::civil::{format_date, parse_date};
use crate::store::Role;
use crate::venue::{self, instruction_sheet};

/// The roles that may make a venue.
const VENUE_ROLES: &[Role] = &[Role::CaseWorker, Role::Admin];

impl Node {
    /// The authority's venue key (`ephemera_node_core::keys::venue_key`): the same on every
    /// node of the authority's group.
    pub fn venue_public_key(&self) -> SealingPublicKey {
        venue_key(&self.keys().pepper).public_key()
    }

    /// `GET /v1/venue-key`: the venue key signed by the authority key, so a venue's tool
    /// that knows the authority's key (`GET /v1/authority`) can check where it came from.
    pub fn venue_key_announcement(&self) -> VenueKeyAnnouncement {
        VenueKeyAnnouncement::sign(&self.venue_public_key(), &self.keys().authority)
    }

    /// `POST /v1/venues`: a case worker or an admin makes a venue. Only the fact is
    /// recorded (`venue-created`); the venue's texts, codes and validity are not.
    ///
    /// # Errors
    /// [`ApiError::InvalidParameter`] for a text over 100 bytes, a date that is not one, or
    /// a validity that ends before it starts; as [`Node::authorize`].
    pub async fn create_venue(
        &self,
        token: &str,
        request: &CreateVenueRequest,
    ) -> Result<CreatedVenue, ApiError> {
        let session = self.authorize(token, Need::OneOf(VENUE_ROLES))?;
        // Absent means the default; an empty text is no date (the document says `date`).
        let day = |name: &'static str, text: &Option<String>| match text.as_deref() {
            None => Ok(None),
            Some(text) => parse_date(text)
                .map(Some)
                .ok_or(ApiError::InvalidParameter {
                    name,
                    reason: "must be a date YYYY-MM-DD",
                }),
        };
        let (from, until) = venue::validity(
            day("valid_from", &request.valid_from)?,
            day("valid_until", &request.valid_until)?,
            self.now().day(),
        )
        .map_err(venue_input)?;
        let made = venue::create(
            &self.venue_public_key(),
            &request.description,
            &request.address,
            from,
            until,
            &mut rand::rng(),
        )
        .map_err(venue_input)?;
        self.audit(
            AuditActor::Account(session.account),
            AuditAction::VenueCreated,
            AuditOutcome::Success,
        )?;
        self.inner.flusher.flush().await?;
        Ok(CreatedVenue {
            instructions: instruction_sheet(&made),
            valid_from: format_date(made.entry.valid_from().day()),
            valid_until: format_date(made.entry.valid_until().day()),
            qr_text: made.qr_text,
            qr_svg: made.qr_svg,
            trace_code: made.trace_text.to_string(),
        })
    }
}

/// A venue the request cannot make, as the caller's error.
fn venue_input(error: VenueError) -> ApiError {
    match error {
        VenueError::TooLong { field, .. } => ApiError::InvalidParameter {
            name: field,
            reason: "at most 100 bytes (UTF-8)",
        },
        VenueError::BadTimeRange => ApiError::InvalidParameter {
            name: "valid_until",
            reason: "must not be before valid_from",
        },
        _ => ApiError::Internal,
    }
}
