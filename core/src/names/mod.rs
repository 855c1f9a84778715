//! Validation of everything a request names: packages, tarball files, versions, org slugs.
//!
//! Every storage key and upstream URL is built from these validated types, never from
//! raw request text, so a hostile path can't reach outside its key space.
//!
//! Where things are: `package` holds `PackageName` and npm's two sets of name rules;
//! `tarball` holds `TarballFile` and the version bound; `org` holds `OrgSlug`; `key` holds
//! `key_segment`, the escaping every store-key segment built from a name goes through;
//! `rev` the syntax of a document revision.

mod key;
mod org;
mod package;
mod rev;
mod tarball;

pub use key::key_segment;
pub use org::{OrgSlug, OrgSlugError};
pub use package::{NameError, PackageName};
pub use rev::is_rev;
pub use tarball::{TarballError, TarballFile, MAX_VERSION_LEN};

#[cfg(test)]
mod tests;
