//! SKILL.md processor: reads the YAML-style frontmatter between `---` lines (flat `key: value`
//! pairs, `tags` as `[a, b]` or `a, b`), requires `name` (lowercase letters, digits, hyphens,
//! at most 64) and `description` (at most 1024 characters), and normalises line endings.

mod frontmatter;

use exports::claudenest::plugin::skills::{Guest, Metadata, Processed};

wit_bindgen::generate!({ path: "../../wit", world: "skill-processor" });

#[unsafe(link_section = "claudenest:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

struct Frontmatter;

impl Guest for Frontmatter {
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

export!(Frontmatter);
