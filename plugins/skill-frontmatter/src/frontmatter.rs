//! The SKILL.md frontmatter rules, free of any WebAssembly binding: the plugin exports them
//! through the WIT `skills` interface, and the host compiles this same file natively as its
//! built-in processor (used when no skill-processor plugin is enabled on a machine).

pub struct Metadata {
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub version: Option<String>,
    pub extra: Vec<(String, String)>,
}

pub struct Processed {
    pub metadata: Metadata,
    pub content: String,
    pub warnings: Vec<String>,
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted {
        v[1..v.len() - 1].to_owned()
    } else {
        v.to_owned()
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

pub fn process(path: &str, content: &str) -> Result<Processed, String> {
    let content = content.replace("\r\n", "\n");
    let mut lines = content.lines();
    if lines.next().map(str::trim) != Some("---") {
        return Err("SKILL.md must start with a frontmatter block (`---`)".into());
    }
    let mut pairs = Vec::new();
    let mut closed = false;
    for line in lines.by_ref() {
        if line.trim() == "---" {
            closed = true;
            break;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("frontmatter line is not `key: value`: {line}"));
        };
        pairs.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    if !closed {
        return Err("the frontmatter block is not closed (`---`)".into());
    }
    let mut warnings = Vec::new();
    let (mut name, mut description, mut tags, mut version, mut extra) =
        (None, None, Vec::new(), None, Vec::new());
    for (key, value) in pairs {
        match key.as_str() {
            "name" => name = Some(unquote(&value)),
            "description" => description = Some(unquote(&value)),
            "version" => version = Some(unquote(&value)),
            "tags" => {
                tags = value
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(unquote)
                    .filter(|t| !t.is_empty())
                    .collect()
            }
            _ => extra.push((key, unquote(&value))),
        }
    }
    let name = name.ok_or("the frontmatter has no `name`")?;
    if !valid_name(&name) {
        return Err(format!(
            "name `{name}` must be 1-64 lowercase letters, digits or hyphens"
        ));
    }
    let description = description.ok_or("the frontmatter has no `description`")?;
    if description.is_empty() || description.chars().count() > 1024 {
        return Err("description must be 1-1024 characters".into());
    }
    let folder = path
        .trim_end_matches("/SKILL.md")
        .rsplit('/')
        .next()
        .unwrap_or("");
    if path.ends_with("SKILL.md") && !folder.is_empty() && folder != name {
        warnings.push(format!(
            "the folder `{folder}` differs from the skill name `{name}`"
        ));
    }
    let body = content.splitn(3, "---").nth(2).unwrap_or("");
    if body.trim().is_empty() {
        warnings.push("the skill has no instructions after its frontmatter".into());
    }
    Ok(Processed {
        metadata: Metadata {
            name,
            description,
            tags,
            version,
            extra,
        },
        content,
        warnings,
    })
}
