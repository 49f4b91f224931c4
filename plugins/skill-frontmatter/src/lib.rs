//! SKILL.md processor: reads the YAML-style frontmatter between `---` lines (flat `key: value`
//! pairs, `tags` as `[a, b]` or `a, b`), requires `name` (lowercase letters, digits, hyphens,
//! at most 64) and `description` (at most 1024 characters), and normalises line endings.

mod frontmatter;
mod guest;

wit_bindgen::generate!({ path: "../../wit", world: "skill-processor" });

#[unsafe(link_section = "claudenest:manifest")]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] =
    *include_bytes!("../manifest.json");

use guest::Frontmatter;

export!(Frontmatter);
