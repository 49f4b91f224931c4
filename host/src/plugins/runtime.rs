//! The wasmtime host for plugins: one `Engine` per process, compiled components cached on disk
//! (keyed by the component's sha256 and the engine's compatibility hash), an `InstancePre` per
//! component, and a fresh `Store` for every call, dropped afterwards (so a trap or timeout never
//! leaves a broken instance behind).
//!
//! Every call runs under: an epoch deadline (the guest yields every tick and traps at the
//! deadline, so a spinning plugin neither blocks a runtime thread nor outlives its time), a
//! memory limit, a stack limit, a per-hostcall byte budget, caps on returned bytes and on log
//! bytes. WASI has no ambient authority: no environment, arguments or stdio, no sockets; the
//! filesystem is the mounts both requested by the plugin and granted by the operator.

use std::{
    collections::HashMap,
    hash::{Hash as _, Hasher as _},
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ResourceLimiter, Store,
    Trap, UpdateDeadline,
    component::{Component, HasSelf, Linker, ResourceTable},
};
use wasmtime_wasi::{
    FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView, p2::pipe::MemoryOutputPipe,
};

use super::manifest::{self, Access, Manifest, World};

/// Generated bindings, one module per world. The `host` interface is generated once (in
/// `mcp`) and shared, so one implementation serves every world.
pub mod bindings {
    pub mod mcp {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "mcp-adapter",
            imports: { default: async | trappable },
            exports: { default: async },
        });
    }
    pub mod summarizer {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "summarizer",
            imports: { default: async | trappable },
            exports: { default: async },
            with: { "claudenest:plugin/host": super::mcp::claudenest::plugin::host },
        });
    }
    pub mod skills {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "skill-processor",
            imports: { default: async | trappable },
            exports: { default: async },
            with: { "claudenest:plugin/host": super::mcp::claudenest::plugin::host },
        });
    }
}

use bindings::mcp::claudenest::plugin::host as wit_host;
pub use bindings::mcp::exports::claudenest::plugin::tools::{Content, Tool, ToolResult};
pub use bindings::skills::exports::claudenest::plugin::skills::{Metadata, Processed};
pub use bindings::summarizer::exports::claudenest::plugin::summarize::{
    Chunk, Options as SummarizeOptions, Summary,
};

/// Limits applied to every call.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory_bytes: usize,
    pub stack_bytes: usize,
    /// Bytes a call may return (and copy to the host in one import call).
    pub output_bytes: usize,
    /// Log bytes a call may write; the rest is dropped (and counted).
    pub log_bytes: usize,
    /// Bytes of an outbound HTTP response body.
    pub http_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            memory_bytes: 64 * 1024 * 1024,
            stack_bytes: 512 * 1024,
            output_bytes: 1024 * 1024,
            log_bytes: 64 * 1024,
            http_body_bytes: 4 * 1024 * 1024,
        }
    }
}

/// What the operator granted the plugin on a machine.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub config: HashMap<String, String>,
    pub mounts: Vec<Mount>,
    /// `host` or `host:port` entries.
    pub http: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Mount {
    /// The plugin's request name; seen as `/<name>`.
    pub name: String,
    pub host_path: PathBuf,
    pub writable: bool,
}

/// Why a call failed, in words for the API.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct PluginError(pub String);

type CallResult<T> = Result<T, PluginError>;

enum Pre {
    Mcp(bindings::mcp::McpAdapterPre<PluginState>),
    Summarizer(bindings::summarizer::SummarizerPre<PluginState>),
    Skills(bindings::skills::SkillProcessorPre<PluginState>),
}

/// A compiled, linked component.
pub struct Loaded {
    pub sha256: String,
    pub manifest: Manifest,
    pub exports: Vec<String>,
    pub imports: Vec<String>,
    pre: Pre,
}

/// The per-call state a plugin's imports see.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    plugin: String,
    config: HashMap<String, String>,
    http: Vec<String>,
    http_body_bytes: usize,
    log_budget: usize,
    logs_dropped: usize,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Memory and table limits that remember they said no (for a clear error).
struct Limiter {
    memory_bytes: usize,
    memory_denied: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_denied = true;
            wasmtime::bail!("memory limit reached");
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        8
    }
}

impl wit_host::Host for PluginState {
    async fn log(&mut self, level: wit_host::LogLevel, message: String) -> wasmtime::Result<()> {
        let line: String = message.chars().take(4096).collect();
        if line.len() > self.log_budget {
            self.logs_dropped += 1;
            return Ok(());
        }
        self.log_budget -= line.len();
        let plugin = self.plugin.as_str();
        match level {
            wit_host::LogLevel::Trace => tracing::trace!(plugin, "{line}"),
            wit_host::LogLevel::Debug => tracing::debug!(plugin, "{line}"),
            wit_host::LogLevel::Info => tracing::info!(plugin, "{line}"),
            wit_host::LogLevel::Warn => tracing::warn!(plugin, "{line}"),
            wit_host::LogLevel::Error => tracing::error!(plugin, "{line}"),
        }
        Ok(())
    }

    async fn config(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.config.get(&key).cloned())
    }

    async fn http_fetch(
        &mut self,
        request: wit_host::HttpRequest,
    ) -> wasmtime::Result<Result<wit_host::HttpResponse, String>> {
        Ok(fetch(&self.http, self.http_body_bytes, request).await)
    }
}

/// Whether `host:port` is covered by a grant (`host` alone covers every port).
fn granted(grants: &[String], host: &str, port: u16) -> bool {
    grants.iter().any(|g| {
        let g = g.to_ascii_lowercase();
        g == host || g == format!("{host}:{port}")
    })
}

/// Loopback, private, link-local and similar addresses a public host name must not lead to.
fn internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| internal(IpAddr::V4(v4)))
        }
    }
}

/// `host.http-fetch`: only granted hosts; a granted *name* must resolve to public addresses
/// (an IP literal or `localhost` grant is taken as meant), and the connection goes to exactly
/// the addresses checked. No redirects, no proxy, a capped body.
async fn fetch(
    grants: &[String],
    body_cap: usize,
    request: wit_host::HttpRequest,
) -> Result<wit_host::HttpResponse, String> {
    let url = reqwest::Url::parse(&request.url).map_err(|e| format!("bad URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http and https URLs".into());
    }
    let host = url
        .host_str()
        .ok_or("the URL has no host")?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    if !granted(grants, &host, port) {
        return Err(format!("{host}:{port} is not granted to this plugin"));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let named_literally = host.parse::<IpAddr>().is_ok() || host == "localhost";
    if addrs.is_empty() || (!named_literally && addrs.iter().any(|a| internal(a.ip()))) {
        return Err(format!("{host} resolves to an address that is not allowed"));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve_to_addrs(&host, &addrs)
        .build()
        .map_err(|e| e.to_string())?;
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| format!("bad method {}", request.method))?;
    let mut builder = client.request(method, url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let mut response = builder.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > body_cap {
            return Err(format!("the response body is larger than {body_cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(wit_host::HttpResponse {
        status,
        headers,
        body,
    })
}

/// Instantiates the component as world `$variant` in a fresh store and calls one export,
/// under every limit of [`PluginRuntime::run`].
macro_rules! call_export {
    ($runtime:expr, $loaded:expr, $grants:expr, $variant:ident,
     $interface:ident . $func:ident ( $($arg:expr),* )) => {
        $runtime.run($loaded, $grants, async |pre, store| {
            let Pre::$variant(pre) = pre else {
                wasmtime::bail!("the component is not a {}", stringify!($variant));
            };
            let instance = pre.instantiate_async(&mut *store).await?;
            instance.$interface().$func(&mut *store $(, $arg)*).await
        })
    };
}

/// The plugin host of this process.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache_dir: Option<PathBuf>,
    loaded: Mutex<HashMap<String, Arc<Loaded>>>,
    limits: Limits,
    /// Whether the pooling allocator could be set up (else on-demand).
    pub pooling: bool,
    /// Plugin calls run here, not on the server's runtime: guests yield at every epoch tick,
    /// but a CPU-bound task that is always ready still delays a runtime's I/O polling, so
    /// spinning plugins must only ever slow other plugins.
    executor: Option<tokio::runtime::Runtime>,
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        // Dropped from async code (the app state), where a blocking shutdown would panic.
        if let Some(executor) = self.executor.take() {
            executor.shutdown_background();
        }
    }
}

impl PluginRuntime {
    /// `cache_dir`: where compiled components are kept (`None`: compile on every load).
    pub fn new(cache_dir: Option<PathBuf>, limits: Limits) -> anyhow::Result<Arc<Self>> {
        Self::with_allocator(cache_dir, limits, true)
    }

    pub fn with_allocator(
        cache_dir: Option<PathBuf>,
        limits: Limits,
        try_pooling: bool,
    ) -> anyhow::Result<Arc<Self>> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(limits.stack_bytes);
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(100)
            .total_core_instances(400)
            .total_memories(200)
            .total_tables(400)
            .max_memory_size(limits.memory_bytes);
        let (engine, pooling) = if try_pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
            match Engine::new(&config) {
                Ok(engine) => (engine, true),
                Err(err) => {
                    tracing::warn!(error = %err, "pooling allocator unavailable; allocating on demand");
                    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                    (Engine::new(&config)?, false)
                }
            }
        } else {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            (Engine::new(&config)?, false)
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wit_host::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        // Epochs tick every 10 ms until the engine is gone.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epochs".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })?;
        let executor = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plugin-call")
            .enable_all()
            .build()?;
        Ok(Arc::new(Self {
            executor: Some(executor),
            engine,
            linker,
            cache_dir,
            loaded: Mutex::default(),
            limits,
            pooling,
        }))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn sha256(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// A loaded component by sha256, if this process has it.
    pub fn get(&self, sha256: &str) -> Option<Arc<Loaded>> {
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sha256)
            .cloned()
    }

    /// Inspects, compiles (or reads the compiled cache) and links a component. Blocking work
    /// runs off the async threads.
    pub async fn load(self: &Arc<Self>, bytes: Vec<u8>) -> Result<Arc<Loaded>, PluginError> {
        let sha256 = Self::sha256(&bytes);
        if let Some(loaded) = self.get(&sha256) {
            return Ok(loaded);
        }
        let runtime = self.clone();
        let loaded = tokio::task::spawn_blocking(move || runtime.load_blocking(&bytes, sha256))
            .await
            .map_err(|e| PluginError(format!("loading failed: {e}")))??;
        let loaded = Arc::new(loaded);
        self.loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(loaded.sha256.clone(), loaded.clone());
        Ok(loaded)
    }

    fn load_blocking(&self, bytes: &[u8], sha256: String) -> Result<Loaded, PluginError> {
        // Checked before compiling: a foreign or incompatible component costs no compile.
        let inspected = manifest::inspect(bytes).map_err(PluginError)?;
        let component = self.compile(bytes, &sha256)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError(format!("the component cannot be linked: {e:#}")))?;
        let link_error = |e: wasmtime::Error| PluginError(format!("wrong world: {e:#}"));
        let pre = match inspected.manifest.world {
            World::McpAdapter => {
                Pre::Mcp(bindings::mcp::McpAdapterPre::new(instance_pre).map_err(link_error)?)
            }
            World::Summarizer => Pre::Summarizer(
                bindings::summarizer::SummarizerPre::new(instance_pre).map_err(link_error)?,
            ),
            World::SkillProcessor => Pre::Skills(
                bindings::skills::SkillProcessorPre::new(instance_pre).map_err(link_error)?,
            ),
        };
        Ok(Loaded {
            sha256,
            manifest: inspected.manifest,
            exports: inspected.exports,
            imports: inspected.imports,
            pre,
        })
    }

    fn compile(&self, bytes: &[u8], sha256: &str) -> Result<Component, PluginError> {
        let compile = || {
            Component::new(&self.engine, bytes)
                .map_err(|e| PluginError(format!("the component does not compile: {e:#}")))
        };
        let Some(dir) = &self.cache_dir else {
            return compile();
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let path = dir.join(format!("{sha256}-{:016x}.cwasm", hasher.finish()));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this engine
            // configuration (the name carries its compatibility hash) into the host's own data
            // directory, and is only read back here; wasmtime checks its header as well.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(component) => return Ok(component),
                Err(err) => {
                    tracing::warn!(error = %err, "compiled plugin cache unreadable; recompiling")
                }
            }
        }
        let component = compile()?;
        if let Ok(serialized) = component.serialize() {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, serialized).is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
        Ok(component)
    }

    /// A fresh store for one call, with the plugin's grants and every limit set.
    fn store(&self, loaded: &Loaded, grants: &Grants) -> CallResult<Store<PluginState>> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(MemoryOutputPipe::new(4096))
            .stderr(MemoryOutputPipe::new(4096))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        for request in &loaded.manifest.capabilities.filesystem {
            let Some(mount) = grants.mounts.iter().find(|m| m.name == request.name) else {
                continue;
            };
            let writable = mount.writable && request.access == Access::ReadWrite;
            let perms = if writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            wasi.preopened_dir(&mount.host_path, format!("/{}", request.name), perms)
                .map_err(|e| {
                    PluginError(format!(
                        "cannot open the granted directory {}: {e}",
                        mount.host_path.display()
                    ))
                })?;
        }
        let http = if loaded.manifest.capabilities.http.is_empty() {
            Vec::new()
        } else {
            grants.http.clone()
        };
        let state = PluginState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes: self.limits.memory_bytes,
                memory_denied: false,
            },
            plugin: loaded.manifest.name.clone(),
            config: grants.config.clone(),
            http,
            http_body_bytes: self.limits.http_body_bytes,
            log_budget: self.limits.log_bytes,
            logs_dropped: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(self.limits.output_bytes + 64 * 1024);
        let deadline = Instant::now() + self.limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        Ok(store)
    }

    /// Runs `call` with a fresh instance and turns every failure into a clear message.
    async fn run<T, F>(&self, loaded: &Loaded, grants: &Grants, call: F) -> CallResult<T>
    where
        F: AsyncFnOnce(&Pre, &mut Store<PluginState>) -> wasmtime::Result<T>,
    {
        let mut store = self.store(loaded, grants)?;
        // The epoch deadline is the real limit; this one also covers time spent in host calls.
        let backstop = self.limits.timeout + Duration::from_secs(1);
        let outcome = tokio::time::timeout(backstop, call(&loaded.pre, &mut store)).await;
        let state = store.data();
        if state.logs_dropped > 0 {
            tracing::warn!(plugin = %state.plugin, dropped = state.logs_dropped, "plugin log lines over the cap were dropped");
        }
        let err = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
            Err(_) => return Err(self.timed_out()),
        };
        Err(self.explain(&err, state.limiter.memory_denied))
    }

    fn timed_out(&self) -> PluginError {
        PluginError(format!(
            "the plugin ran past its {:?} deadline and was stopped",
            self.limits.timeout
        ))
    }

    fn explain(&self, err: &wasmtime::Error, memory_denied: bool) -> PluginError {
        if memory_denied {
            return PluginError(format!(
                "the plugin exceeded its memory limit of {} MiB and was stopped",
                self.limits.memory_bytes / (1024 * 1024)
            ));
        }
        match err.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => self.timed_out(),
            Some(Trap::StackOverflow) => PluginError("the plugin exhausted its stack".into()),
            Some(trap) => PluginError(format!("the plugin trapped: {trap}")),
            None => {
                let text = format!("{err:#}");
                if text.contains("fuel") {
                    PluginError(format!(
                        "the plugin returned more than {} bytes",
                        self.limits.output_bytes
                    ))
                } else {
                    PluginError(format!("the plugin failed: {text}"))
                }
            }
        }
    }

    fn check_output(&self, bytes: usize) -> CallResult<()> {
        if bytes > self.limits.output_bytes {
            return Err(PluginError(format!(
                "the plugin returned {bytes} bytes, more than the {} byte cap",
                self.limits.output_bytes
            )));
        }
        Ok(())
    }

    /// Runs a plugin call on the plugin executor and waits for it.
    async fn on_executor<T: Send + 'static>(
        &self,
        call: impl Future<Output = CallResult<T>> + Send + 'static,
    ) -> CallResult<T> {
        let executor = self
            .executor
            .as_ref()
            .expect("the executor lives as long as the runtime");
        executor
            .spawn(call)
            .await
            .map_err(|e| PluginError(format!("the plugin call was lost: {e}")))?
    }

    /// Instantiates the component in a fresh store and drops it: the fixed cost every call
    /// pays before the plugin's code runs (measured by the plugins benchmark).
    pub async fn instantiate(self: &Arc<Self>, loaded: &Arc<Loaded>) -> CallResult<()> {
        let (rt, loaded) = (self.clone(), loaded.clone());
        self.on_executor(async move {
            rt.run(&loaded, &Grants::default(), async |pre, store| {
                match pre {
                    Pre::Mcp(pre) => {
                        pre.instantiate_async(&mut *store).await?;
                    }
                    Pre::Summarizer(pre) => {
                        pre.instantiate_async(&mut *store).await?;
                    }
                    Pre::Skills(pre) => {
                        pre.instantiate_async(&mut *store).await?;
                    }
                }
                Ok(())
            })
            .await
        })
        .await
    }

    pub async fn list_tools(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
    ) -> CallResult<Vec<Tool>> {
        let (rt, loaded, grants) = (self.clone(), loaded.clone(), grants.clone());
        self.on_executor(async move {
            let tools = call_export!(
                rt,
                &loaded,
                &grants,
                Mcp,
                claudenest_plugin_tools.call_list_tools()
            )
            .await?;
            let size: usize = tools
                .iter()
                .map(|t| t.name.len() + t.description.len() + t.input_schema.len())
                .sum();
            rt.check_output(size)?;
            Ok(tools)
        })
        .await
    }

    /// `Ok(Err(message))` is the plugin refusing the call (unknown tool, bad arguments).
    pub async fn call_tool(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
        name: &str,
        arguments: &str,
    ) -> CallResult<Result<ToolResult, String>> {
        let (rt, loaded, grants) = (self.clone(), loaded.clone(), grants.clone());
        let (name, arguments) = (name.to_owned(), arguments.to_owned());
        self.on_executor(async move {
            let result = call_export!(
                rt,
                &loaded,
                &grants,
                Mcp,
                claudenest_plugin_tools.call_call_tool(&name, &arguments)
            )
            .await?;
            if let Ok(result) = &result {
                let size: usize = result
                    .content
                    .iter()
                    .map(|c| match c {
                        Content::Text(t) | Content::Json(t) => t.len(),
                        Content::Image(i) => i.data.len() + i.mime_type.len(),
                    })
                    .sum();
                rt.check_output(size)?;
            }
            Ok(result)
        })
        .await
    }

    pub async fn summarize(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
        chunks: &[Chunk],
        options: SummarizeOptions,
    ) -> CallResult<Result<Summary, String>> {
        let (rt, loaded, grants, chunks) = (
            self.clone(),
            loaded.clone(),
            grants.clone(),
            chunks.to_vec(),
        );
        self.on_executor(async move {
            let result = call_export!(
                rt,
                &loaded,
                &grants,
                Summarizer,
                claudenest_plugin_summarize.call_summarize(&chunks, options)
            )
            .await?;
            if let Ok(summary) = &result {
                rt.check_output(summary.text.len() + summary.used.len() * 4)?;
            }
            Ok(result)
        })
        .await
    }

    pub async fn process_skill(
        self: &Arc<Self>,
        loaded: &Arc<Loaded>,
        grants: &Grants,
        path: &str,
        content: &str,
    ) -> CallResult<Result<Processed, String>> {
        let (rt, loaded, grants) = (self.clone(), loaded.clone(), grants.clone());
        let (path, content) = (path.to_owned(), content.to_owned());
        self.on_executor(async move {
            let result = call_export!(
                rt,
                &loaded,
                &grants,
                Skills,
                claudenest_plugin_skills.call_process(&path, &content)
            )
            .await?;
            if let Ok(processed) = &result {
                let m = &processed.metadata;
                let size = processed.content.len()
                    + m.name.len()
                    + m.description.len()
                    + processed.warnings.iter().map(String::len).sum::<usize>();
                rt.check_output(size)?;
            }
            Ok(result)
        })
        .await
    }
}
