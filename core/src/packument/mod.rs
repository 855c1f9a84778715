//! Pure transformations of package documents ("packuments"): merging an upstream answer
//! into the copy nproxy holds, rewriting tarball URLs to nproxy's own, and deriving the
//! abbreviated install form. These run only when a document changes, never per request.
//!
//! Where things are: `document` holds `Packument` itself (a document as raw JSON pieces,
//! and why) with dist-tag repair; `merge` merges an upstream answer into the held copy;
//! `tarballs` indexes and rewrites tarball URLs; `form` is the full or abbreviated form a
//! client asked for, and the abbreviation.

mod document;
mod form;
mod merge;
mod tarballs;

pub use document::{repair_dist_tags, Packument, PackumentError};
pub use form::{abbreviate, Form, ABBREVIATED_MEDIA_TYPE};
pub use merge::merge;
pub use tarballs::{
    attestations_url, rewrite_tarballs, rewritten_manifest, tarball_index, tarball_url, DistInfo,
};

#[cfg(test)]
mod tests;
