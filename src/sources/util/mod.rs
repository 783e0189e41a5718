//! What the sources share: records to events (`emit`), one S3 object into a unit (`object`),
//! and `validate_digests` on any source (`integrity`). No source imports another; they meet
//! here.

pub mod emit;
pub mod integrity;
pub mod kind;
pub mod object;
