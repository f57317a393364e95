//! Nothing of a pseudo-terminal is restored: every one is refused at the checkpoint.

use crate::Recreated;
use cairn_image::{MemorySource, ProcessTreeImage};
use cairn_sys::Result;

/// Nothing to recreate.
struct Nothing;

impl Recreated for Nothing {}

/// [`crate::RecreateFn`]: nothing to recreate.
pub fn recreate(
    _image: &ProcessTreeImage,
    _source: &dyn MemorySource,
) -> Result<Box<dyn Recreated>> {
    Ok(Box::new(Nothing))
}
