//! Test fixture: the `skill-frontmatter` processor (the same source) *without* an embedded
//! manifest, so tests can give it any manifest the way `claudenest plugin pack` does (new
//! versions, other capabilities) without compiling anything large.

#[path = "../../skill-frontmatter/src/frontmatter.rs"]
mod frontmatter;
#[path = "../../skill-frontmatter/src/guest.rs"]
mod guest;

wit_bindgen::generate!({ path: "../../wit", world: "skill-processor" });

use guest::Frontmatter;

export!(Frontmatter);
