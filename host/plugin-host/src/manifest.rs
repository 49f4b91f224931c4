//! What a component says about itself, read before it is compiled: the manifest it embeds
//! (custom section `claudenest:manifest`, JSON) and the interfaces it really exports.

use serde::{Deserialize, Serialize};

use crate::bindings::WitVersion;

/// The plugin API this host speaks (`claudenest:plugin@…` in wit/plugin.wit).
pub const API_VERSION: &str = WitVersion::V0_1.as_str();
/// Name of the custom section holding the manifest.
pub const MANIFEST_SECTION: &str = "claudenest:manifest";
/// Largest manifest accepted.
const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// The three worlds of wit/plugin.wit and the interface each exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum World {
    McpAdapter,
    Summarizer,
    SkillProcessor,
}

impl World {
    pub const ALL: [World; 3] = [World::McpAdapter, World::Summarizer, World::SkillProcessor];

    pub fn as_str(self) -> &'static str {
        match self {
            World::McpAdapter => "mcp-adapter",
            World::Summarizer => "summarizer",
            World::SkillProcessor => "skill-processor",
        }
    }

    /// Where plugins of this world run: mcp-adapters on the agent of the machine they are
    /// enabled on (their tools act on that machine); summarizers and skill processors in the
    /// host process, with no filesystem.
    pub fn runs_on_agent(self) -> bool {
        self == World::McpAdapter
    }

    pub fn parse(s: &str) -> Option<World> {
        World::ALL.into_iter().find(|w| w.as_str() == s)
    }

    /// The export that makes a component this world, e.g. `claudenest:plugin/tools@0.1.0`.
    pub fn export(self) -> String {
        let interface = match self {
            World::McpAdapter => "tools",
            World::Summarizer => "summarize",
            World::SkillProcessor => "skills",
        };
        format!("claudenest:plugin/{interface}@{API_VERSION}")
    }
}

/// A filesystem mount the plugin asks for; the operator binds it to a directory per machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FsRequest {
    /// Seen by the plugin as `/<name>`.
    pub name: String,
    pub access: Access,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Read,
    ReadWrite,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default)]
    pub filesystem: Vec<FsRequest>,
    /// Hosts (`host` or `host:port`) the plugin may ask to reach; `*` for any the operator
    /// grants.
    #[serde(default)]
    pub http: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub world: World,
    pub api_version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Capabilities,
}

/// What inspecting a component found.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub manifest: Manifest,
    /// Top-level exports (interface names).
    pub exports: Vec<String>,
    /// Top-level imports.
    pub imports: Vec<String>,
    /// Functions defined by all its core modules (what compiling costs grows with).
    pub functions: usize,
    /// Bytes of code in all its core modules.
    pub code_bytes: usize,
    /// The WIT version its manifest names, one this host speaks.
    pub wit_version: WitVersion,
}

/// Reads and checks the manifest and exports without compiling anything. The error says what
/// is wrong in words an author can act on.
pub fn inspect(bytes: &[u8]) -> Result<Inspected, String> {
    if !wasmparser::Parser::is_component(bytes) {
        return Err(if wasmparser::Parser::is_core_wasm(bytes) {
            "this is a core WebAssembly module, not a component: build for wasm32-wasip2 (or run \
             `wasm-tools component new`)"
                .into()
        } else {
            "not a WebAssembly component".into()
        });
    }
    let mut manifest = None;
    let (mut exports, mut imports) = (Vec::new(), Vec::new());
    let (mut functions, mut code_bytes) = (0usize, 0usize);
    // Nesting depth: exports and imports count at the top level only; the manifest may sit in
    // a nested core module (where `#[link_section]` puts it) or at the top.
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        use wasmparser::Payload;
        match payload.map_err(|e| format!("malformed component: {e}"))? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::CodeSectionStart { count, size, .. } => {
                functions = functions.saturating_add(count as usize);
                code_bytes = code_bytes.saturating_add(size as usize);
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) if section.name() == MANIFEST_SECTION => {
                if manifest.is_some() {
                    return Err("the component holds two manifests".into());
                }
                if section.data().len() > MAX_MANIFEST_BYTES {
                    return Err("the manifest is larger than 64 KiB".into());
                }
                manifest = Some(section.data().to_vec());
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|e| format!("malformed export: {e}"))?;
                    exports.push(export.name.name.to_owned());
                }
            }
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(|e| format!("malformed import: {e}"))?;
                    imports.push(import.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    let raw = manifest.ok_or_else(|| {
        format!("the component has no `{MANIFEST_SECTION}` custom section (see docs/plugins.md)")
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&raw).map_err(|e| format!("the manifest is not valid: {e}"))?;
    let wit_version = check(&manifest, &exports)?;
    Ok(Inspected {
        manifest,
        exports,
        imports,
        functions,
        code_bytes,
        wit_version,
    })
}

fn check(manifest: &Manifest, exports: &[String]) -> Result<WitVersion, String> {
    let wit_version = WitVersion::parse(&manifest.api_version).ok_or_else(|| {
        format!(
            "plugin API version {} is not supported (this host speaks {API_VERSION})",
            manifest.api_version
        )
    })?;
    let name_ok = (1..=64).contains(&manifest.name.len())
        && manifest
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err("the manifest name must be 1-64 lowercase letters, digits or hyphens".into());
    }
    if manifest.version.is_empty() || manifest.version.len() > 32 {
        return Err("the manifest version must be 1-32 characters".into());
    }
    let wanted = manifest.world.export();
    if !exports.contains(&wanted) {
        let versioned = exports
            .iter()
            .find(|e| e.starts_with("claudenest:plugin/"))
            .cloned();
        return Err(match versioned {
            Some(other) => format!(
                "the manifest says world `{}` but the component exports `{other}`, not `{wanted}`",
                manifest.world.as_str()
            ),
            None => format!(
                "the component does not export `{wanted}` (world `{}`)",
                manifest.world.as_str()
            ),
        });
    }
    if !manifest.world.runs_on_agent() && !manifest.capabilities.filesystem.is_empty() {
        return Err(format!(
            "`{}` plugins run on the host, which gives plugins no filesystem: remove \
             capabilities.filesystem",
            manifest.world.as_str()
        ));
    }
    for host in &manifest.capabilities.http {
        if host != "*" && super::hosts::HostEntry::parse(host).is_err() {
            return Err(format!(
                "capabilities.http entry `{host}`: give a host, host:port or `*`"
            ));
        }
    }
    for fs in &manifest.capabilities.filesystem {
        let ok = (1..=32).contains(&fs.name.len())
            && fs
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(format!(
                "filesystem request `{}`: names are 1-32 letters, digits, `-` or `_`",
                fs.name
            ));
        }
    }
    Ok(wit_version)
}

/// Appends a manifest as a top-level custom section (for components built by tools that cannot
/// embed one, e.g. componentize-py). A custom section may appear anywhere in a component.
pub fn append_manifest(component: &[u8], manifest: &Manifest) -> Vec<u8> {
    let payload = serde_json::to_vec(manifest).expect("manifests serialize");
    let mut section = Vec::new();
    leb128(&mut section, MANIFEST_SECTION.len() as u64);
    section.extend_from_slice(MANIFEST_SECTION.as_bytes());
    section.extend_from_slice(&payload);
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, section.len() as u64);
    out.extend_from_slice(&section);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
