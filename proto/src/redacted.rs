//! `Debug` for the generated messages that carry an upstream credential (their derived one
//! is skipped in `build.rs`): every field but the credential, and only whether it is set,
//! so no log line, panic message or test failure ever prints one.

use std::fmt;

use crate::v1::{AddUpstreamRouteRequest, UpdateUpstreamRouteRequest, UpstreamCredential};

const SET: &str = "<redacted>";
const UNSET: &str = "<none>";

fn shown(credential: &str) -> &'static str {
    if credential.is_empty() {
        UNSET
    } else {
        SET
    }
}

impl fmt::Debug for AddUpstreamRouteRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddUpstreamRouteRequest")
            .field("org", &self.org)
            .field("pattern", &self.pattern)
            .field("url", &self.url)
            .field("credential", &shown(&self.credential))
            .finish()
    }
}

impl fmt::Debug for UpdateUpstreamRouteRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateUpstreamRouteRequest")
            .field("org", &self.org)
            .field("id", &self.id)
            .field("url", &self.url)
            .field("credential", &self.credential.as_deref().map(shown))
            .finish()
    }
}

impl fmt::Debug for UpstreamCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamCredential")
            .field("route_id", &self.route_id)
            .field("version", &self.version)
            .field("credential", &shown(&self.credential))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::v1::GetUpstreamCredentialsResponse;

    use super::*;

    #[test]
    fn no_debug_output_carries_a_credential() {
        let secret = "vendor-s3cret";
        let shown = [
            format!(
                "{:?}",
                AddUpstreamRouteRequest {
                    credential: secret.into(),
                    ..Default::default()
                }
            ),
            format!(
                "{:?}",
                UpdateUpstreamRouteRequest {
                    credential: Some(secret.into()),
                    ..Default::default()
                }
            ),
            format!(
                "{:#?}",
                GetUpstreamCredentialsResponse {
                    credentials: vec![UpstreamCredential {
                        route_id: "r".into(),
                        version: 2,
                        credential: secret.into(),
                    }],
                }
            ),
        ];
        for s in &shown {
            assert!(!s.contains(secret), "{s}");
            assert!(s.contains(SET), "{s}");
        }
        assert!(shown[2].contains("version: 2"), "{}", shown[2]);
        let none = format!("{:?}", UpdateUpstreamRouteRequest::default());
        assert!(none.contains("credential: None"), "{none}");
    }
}
