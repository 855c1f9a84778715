//! The org's rules at the HTTP edge: the policy a public package is judged by, and the
//! refusal of a version it blocks.

use crate::error::NpmError;
use crate::http::server::App;
use crate::org::OrgView;
use crate::rules::verdicts::Policy;
use nproxy_core::names::PackageName;

impl App {
    /// A version of a public package the org's rules block is refused (403, saying why).
    pub(crate) async fn refuse_blocked(
        &self,
        view: &OrgView,
        name: &PackageName,
        version: &str,
    ) -> Result<(), NpmError> {
        let Some(policy) = self.policy(view, name).await? else {
            return Ok(());
        };
        let public = self.public_for(view, name).await?;
        let v = public
            .packuments
            .verdict(name, &policy)
            .await
            .map_err(NpmError::from)?;
        if v.verdict.blocked.contains(version) {
            return Err(NpmError::Forbidden(
                v.verdict.version_refusal(name.as_str(), version),
            ));
        }
        Ok(())
    }

    /// The org's rules as they apply to a public package (none for open orgs).
    pub(crate) async fn policy(
        &self,
        view: &OrgView,
        name: &PackageName,
    ) -> Result<Option<Policy>, NpmError> {
        let OrgView::Configured(cfg) = view else {
            return Ok(None);
        };
        let advisories = self.orgs.advisories(name.as_str()).await?;
        Ok(Some(Policy {
            org_id: cfg.org_id.clone(),
            config_version: cfg.version,
            rules: cfg.rules.clone(),
            exceptions: cfg
                .exceptions
                .get(name.as_str())
                .cloned()
                .unwrap_or_default(),
            advisories,
        }))
    }
}
