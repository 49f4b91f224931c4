//! The processor itself, shared with the test fixture `bare-skill` (the same rules without an
//! embedded manifest). Each crate generates the bindings at its root.

use crate::exports::claudenest::plugin::skills::{Guest, Metadata, Processed};

pub struct Frontmatter;

impl Guest for Frontmatter {
    fn process(path: String, content: String) -> Result<Processed, String> {
        let p = crate::frontmatter::process(&path, &content)?;
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
