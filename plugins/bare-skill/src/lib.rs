//! Test fixture: the `skill-frontmatter` processor's rules (the same source) *without* an
//! embedded manifest, so tests can give it any manifest the way `claudenest plugin pack` does
//! (new versions, other capabilities) without compiling anything large.

#[path = "../../skill-frontmatter/src/frontmatter.rs"]
mod frontmatter;

use exports::claudenest::plugin::skills::{Guest, Metadata, Processed};

wit_bindgen::generate!({ path: "../../wit", world: "skill-processor" });

struct Bare;

impl Guest for Bare {
    fn process(path: String, content: String) -> Result<Processed, String> {
        let p = frontmatter::process(&path, &content)?;
        let m = p.metadata;
        Ok(Processed {
            metadata: Metadata {
                name: m.name,
                description: m.description,
                tags: m.tags,
                version: m.version,
                extra: m.extra,
            },
            content: p.content,
            warnings: p.warnings,
        })
    }
}

export!(Bare);
