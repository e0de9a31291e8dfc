//! The only place Clinker spawns processes.
//!
//! Drivers and target helpers build a [`Command`] (program plus argument
//! vector, never a shell string) and hand it to an injected
//! [`CommandRunner`]: [`HostRunner`] runs it for real through
//! `tokio::process`, [`FakeRunner`] answers from a script and records every
//! call so unit tests can assert exact command lines without root or tools.
//! [`CommandRunner::spawn_piped`] starts a process whose stdin is streamed
//! ([`PipedChild`]), for tools that read data as it arrives (`rbd import -`),
//! and [`CommandRunner::spawn_reading`] one whose stdout is streamed
//! ([`ReadingChild`]), for tools that write data as they go (`rbd export -`):
//! both are one [`StreamingChild`] over the stream they expose.
//! Depends on `clinker-types` only.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clinker_types::ErrorKind;
use tokio::io::{AsyncRead, AsyncWrite};

/// A process to run: program, arguments, extra environment, optional stdin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The program (looked up in `PATH`).
    pub program: String,
    /// Its arguments, each passed as one argv entry.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Bytes written to stdin.
    pub stdin: Option<Vec<u8>>,
    /// Kill it after this long.
    pub timeout: Option<Duration>,
}

impl Command {
    /// A command with no arguments yet.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: None,
        }
    }

    /// Appends one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Feeds `bytes` to stdin.
    #[must_use]
    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(bytes);
        self
    }

    /// Kills the process after `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The command line for logs and test assertions (arguments separated by
    /// single spaces, not quoted: it is never executed as text).
    pub fn command_line(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command_line())
    }
}

/// What a finished process returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// The exit code; `-signal` when killed by a signal.
    pub code: i32,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// A successful output with `stdout`.
    pub fn ok(stdout: impl Into<String>) -> Self {
        Self {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    /// A failed output.
    pub fn failed(code: i32, stderr: impl Into<String>) -> Self {
        Self {
            code,
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }
}

/// Why a command did not produce a successful output.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program could not be started (missing binary, permissions).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran longer than its timeout and was killed.
    #[error("{command} timed out after {timeout:?}")]
    Timeout {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// It exited non-zero (only from [`CommandRunner::run_checked`]).
    #[error("{command} exited with {code}: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// The exit code.
        code: i32,
        /// Its standard output.
        stdout: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

impl ExecError {
    /// The classification: a missing tool or a timeout means the backend is
    /// unavailable; a failed command is the caller's to classify further.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExecError::Spawn { .. } | ExecError::Timeout { .. } => ErrorKind::Unavailable,
            ExecError::Failed { .. } => ErrorKind::Internal,
        }
    }

    /// The standard error text of a failed command (empty otherwise).
    pub fn stderr(&self) -> &str {
        match self {
            ExecError::Failed { stderr, .. } => stderr,
            _ => "",
        }
    }

    /// The exit code of a failed command.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            ExecError::Failed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// What finishing a streaming child means once its stream is let go.
type Finish = Box<dyn FnOnce() -> BoxFuture<Result<Output, ExecError>> + Send>;

/// The stream of a [`StreamingChild`]: how it is let go before the exit
/// is awaited.
pub trait ChildStream: Send + Unpin {
    /// Lets the stream go: a stdin is shut down (the process sees end of
    /// file), a stdout dropped (a process still writing gets `EPIPE`).
    fn close(stream: Box<Self>) -> BoxFuture<()>;
}

impl ChildStream for dyn AsyncWrite + Send + Unpin {
    fn close(mut stream: Box<Self>) -> BoxFuture<()> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            // A child that exited early has closed its end: not our error.
            let _ = stream.shutdown().await;
        })
    }
}

impl ChildStream for dyn AsyncRead + Send + Unpin {
    fn close(stream: Box<Self>) -> BoxFuture<()> {
        drop(stream);
        Box::pin(std::future::ready(()))
    }
}

/// A running process one of whose standard streams is streamed while it
/// runs: [`PipedChild`] (stdin) or [`ReadingChild`] (stdout). Use the
/// stream (the child is itself an `AsyncWrite` / `AsyncRead`), then
/// [`StreamingChild::finish`] lets it go and waits for the exit.
pub struct StreamingChild<S: ChildStream + ?Sized> {
    command: String,
    stream: Box<S>,
    finish: Finish,
}

/// A running process whose stdin is streamed (e.g. `rbd import - <name>`
/// fed with image data as it arrives): write to [`PipedChild::stdin`],
/// then [`StreamingChild::finish`] closes stdin and waits for the exit.
pub type PipedChild = StreamingChild<dyn AsyncWrite + Send + Unpin>;

/// A running process whose stdout is streamed (e.g. `rbd export-diff …
/// -`, read as it is produced): read [`ReadingChild::stdout`] to its end,
/// then [`StreamingChild::finish`] waits for the exit (its `stdout` is
/// empty: it was streamed).
pub type ReadingChild = StreamingChild<dyn AsyncRead + Send + Unpin>;

impl<S: ChildStream + ?Sized> fmt::Debug for StreamingChild<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingChild")
            .field("command", &self.command)
            .finish()
    }
}

impl<S: ChildStream + ?Sized> StreamingChild<S> {
    /// A child made of its stream and what finishing it means (for
    /// runners other than the host's).
    pub fn new(
        command: String,
        stream: Box<S>,
        finish: impl FnOnce() -> BoxFuture<Result<Output, ExecError>> + Send + 'static,
    ) -> Self {
        Self {
            command,
            stream,
            finish: Box::new(finish),
        }
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Lets the stream go and waits for the process to exit; any exit code
    /// is an `Ok` output, as [`CommandRunner::run`].
    ///
    /// # Errors
    /// Waiting for the process failed, or it outlived its timeout
    /// (counted from here).
    pub async fn finish(self) -> Result<Output, ExecError> {
        let Self { stream, finish, .. } = self;
        S::close(stream).await;
        finish().await
    }

    /// [`Self::finish`], treating a non-zero exit as an error.
    ///
    /// # Errors
    /// As [`Self::finish`], plus [`ExecError::Failed`].
    pub async fn finish_checked(self) -> Result<Output, ExecError> {
        let command = self.command.clone();
        checked(command, self.finish().await?)
    }
}

impl PipedChild {
    /// The process's stdin.
    pub fn stdin(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        self.stream.as_mut()
    }
}

impl ReadingChild {
    /// The process's stdout.
    pub fn stdout(&mut self) -> &mut (dyn AsyncRead + Send + Unpin) {
        self.stream.as_mut()
    }
}

impl AsyncWrite for PipedChild {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(self.get_mut().stdin()).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.get_mut().stdin()).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.get_mut().stdin()).poll_shutdown(cx)
    }
}

impl AsyncRead for ReadingChild {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(self.get_mut().stdout()).poll_read(cx, buf)
    }
}

impl ReadingChild {
    /// Separates the stdout from the wait for the exit, for a consumer that
    /// must own the reader (an HTTP body streamed to Glance): read the
    /// stream to its end or drop it, then [`ChildExit::finish`].
    pub fn into_parts(self) -> (Box<dyn AsyncRead + Send + Unpin>, ChildExit) {
        let Self {
            command,
            stream,
            finish,
        } = self;
        (stream, ChildExit { command, finish })
    }
}

/// The exit of a [`ReadingChild`] whose stdout was taken
/// ([`ReadingChild::into_parts`]).
pub struct ChildExit {
    command: String,
    finish: Box<dyn FnOnce() -> BoxFuture<Result<Output, ExecError>> + Send>,
}

impl fmt::Debug for ChildExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildExit")
            .field("command", &self.command)
            .finish()
    }
}

impl ChildExit {
    /// Waits for the process to exit, as [`ReadingChild::finish`]; its
    /// stdout must have been dropped (a process still writing would block
    /// until its timeout).
    ///
    /// # Errors
    /// As [`ReadingChild::finish`].
    pub async fn finish(self) -> Result<Output, ExecError> {
        (self.finish)().await
    }
}

fn checked(command: String, out: Output) -> Result<Output, ExecError> {
    if out.success() {
        Ok(out)
    } else {
        Err(ExecError::Failed {
            command,
            code: out.code,
            stdout: out.stdout,
            stderr: out.stderr.trim().to_owned(),
        })
    }
}

/// Runs commands. Injected into drivers and target helpers.
#[async_trait::async_trait]
pub trait CommandRunner: Send + Sync + fmt::Debug {
    /// Runs `cmd` to completion; any exit code is an `Ok` output.
    ///
    /// # Errors
    /// The process could not be started or timed out.
    async fn run(&self, cmd: &Command) -> Result<Output, ExecError>;

    /// Runs `cmd` and treats a non-zero exit as an error.
    ///
    /// # Errors
    /// As [`CommandRunner::run`], plus [`ExecError::Failed`].
    async fn run_checked(&self, cmd: &Command) -> Result<Output, ExecError> {
        checked(cmd.command_line(), self.run(cmd).await?)
    }

    /// Starts `cmd` with a streamed stdin (`cmd.stdin` is ignored); its
    /// `timeout` counts from [`StreamingChild::finish`].
    ///
    /// # Errors
    /// The process could not be started; runners that cannot stream stdin
    /// (the default) say so as a spawn error.
    async fn spawn_piped(&self, cmd: &Command) -> Result<PipedChild, ExecError> {
        Err(ExecError::Spawn {
            program: cmd.program.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this runner cannot stream a process's stdin",
            ),
        })
    }
    /// Starts `cmd` with its stdout streamed (`cmd.stdin` is fed as by
    /// [`CommandRunner::run`]); its `timeout` counts from
    /// [`StreamingChild::finish`].
    ///
    /// # Errors
    /// The process could not be started; runners that cannot stream stdout
    /// (the default) say so as a spawn error.
    async fn spawn_reading(&self, cmd: &Command) -> Result<ReadingChild, ExecError> {
        Err(ExecError::Spawn {
            program: cmd.program.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this runner cannot stream a process's stdout",
            ),
        })
    }
}

/// Runs commands on this host with `tokio::process`, optionally behind a
/// root helper (`sudo`, as Cinder's `root_helper`).
#[derive(Clone, Debug, Default)]
pub struct HostRunner {
    root_helper: Vec<String>,
}

impl HostRunner {
    /// Runs commands directly.
    pub fn new() -> Self {
        Self::default()
    }

    /// Prefixes every command with `helper` (e.g. `["sudo", "-n"]`).
    pub fn with_root_helper(helper: Vec<String>) -> Self {
        Self {
            root_helper: helper,
        }
    }

    /// The process for `cmd` behind the root helper, stdout and stderr
    /// piped, killed when dropped.
    fn process(&self, cmd: &Command, stdin: std::process::Stdio) -> tokio::process::Command {
        let (program, args): (&str, Vec<&str>) = match self.root_helper.split_first() {
            Some((helper, helper_args)) => (
                helper.as_str(),
                helper_args
                    .iter()
                    .map(String::as_str)
                    .chain(std::iter::once(cmd.program.as_str()))
                    .chain(cmd.args.iter().map(String::as_str))
                    .collect(),
            ),
            None => (
                cmd.program.as_str(),
                cmd.args.iter().map(String::as_str).collect(),
            ),
        };
        #[allow(clippy::disallowed_methods)] // this is the one sanctioned place
        let mut process = tokio::process::Command::new(program);
        process
            .args(&args)
            .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(stdin)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        process
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        -status.signal().unwrap_or(1)
    })
}

#[async_trait::async_trait]
impl CommandRunner for HostRunner {
    async fn run(&self, cmd: &Command) -> Result<Output, ExecError> {
        use std::process::Stdio;
        use tokio::io::AsyncWriteExt;

        let mut process = self.process(
            cmd,
            if cmd.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            },
        );
        tracing::debug!(command = %cmd, "running command");
        let mut child = process.spawn().map_err(|source| ExecError::Spawn {
            program: cmd.program.clone(),
            source,
        })?;
        if let (Some(bytes), Some(mut stdin)) = (cmd.stdin.clone(), child.stdin.take()) {
            // A child that exits without reading stdin is not our error.
            let _ = stdin.write_all(&bytes).await;
        }
        let wait = child.wait_with_output();
        let output = match cmd.timeout {
            Some(limit) => match tokio::time::timeout(limit, wait).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(ExecError::Timeout {
                        command: cmd.command_line(),
                        timeout: limit,
                    });
                }
            },
            None => wait.await,
        }
        .map_err(|source| ExecError::Spawn {
            program: cmd.program.clone(),
            source,
        })?;
        Ok(Output {
            code: exit_code(output.status),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    async fn spawn_piped(&self, cmd: &Command) -> Result<PipedChild, ExecError> {
        use tokio::io::AsyncReadExt;

        tracing::debug!(command = %cmd, "running command with streamed stdin");
        let spawn_error = |source| ExecError::Spawn {
            program: cmd.program.clone(),
            source,
        };
        let mut child = self
            .process(cmd, std::process::Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let missing = || std::io::Error::other("a piped stream is missing");
        let stdin = child
            .stdin
            .take()
            .ok_or_else(missing)
            .map_err(spawn_error)?;
        // Drained from the start: a child that writes more than a pipe
        // holds while we still feed it would otherwise never read again.
        let drain = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            tokio::spawn(async move {
                let mut bytes = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut bytes).await;
                }
                String::from_utf8_lossy(&bytes).into_owned()
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let command = cmd.command_line();
        let timeout = cmd.timeout;
        let program = cmd.program.clone();
        let finish_command = command.clone();
        Ok(PipedChild::new(command, Box::new(stdin), move || {
            Box::pin(async move {
                let status = match timeout {
                    Some(limit) => {
                        tokio::time::timeout(limit, child.wait())
                            .await
                            .map_err(|_| ExecError::Timeout {
                                command: finish_command,
                                timeout: limit,
                            })?
                    }
                    None => child.wait().await,
                }
                .map_err(|source| ExecError::Spawn { program, source })?;
                Ok(Output {
                    code: exit_code(status),
                    stdout: stdout.await.unwrap_or_default(),
                    stderr: stderr.await.unwrap_or_default(),
                })
            })
        }))
    }

    async fn spawn_reading(&self, cmd: &Command) -> Result<ReadingChild, ExecError> {
        use std::process::Stdio;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        tracing::debug!(command = %cmd, "running command with streamed stdout");
        let spawn_error = |source| ExecError::Spawn {
            program: cmd.program.clone(),
            source,
        };
        let stdin = if cmd.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = self.process(cmd, stdin).spawn().map_err(spawn_error)?;
        if let (Some(bytes), Some(mut pipe)) = (cmd.stdin.clone(), child.stdin.take()) {
            tokio::spawn(async move {
                // A child that exits without reading stdin is not our error.
                let _ = pipe.write_all(&bytes).await;
            });
        }
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("a piped stream is missing"))
            .map_err(spawn_error)?;
        // Drained from the start, so a chatty stderr never blocks the child.
        let stderr = child.stderr.take();
        let stderr = tokio::spawn(async move {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = stderr {
                let _ = pipe.read_to_end(&mut bytes).await;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        });
        let command = cmd.command_line();
        let timeout = cmd.timeout;
        let program = cmd.program.clone();
        let finish_command = command.clone();
        Ok(ReadingChild::new(command, Box::new(stdout), move || {
            Box::pin(async move {
                let status = match timeout {
                    Some(limit) => {
                        tokio::time::timeout(limit, child.wait())
                            .await
                            .map_err(|_| ExecError::Timeout {
                                command: finish_command,
                                timeout: limit,
                            })?
                    }
                    None => child.wait().await,
                }
                .map_err(|source| ExecError::Spawn { program, source })?;
                Ok(Output {
                    code: exit_code(status),
                    stdout: String::new(),
                    stderr: stderr.await.unwrap_or_default(),
                })
            })
        }))
    }
}

type Responder = Box<dyn Fn(&Command) -> Output + Send + Sync>;

struct Rule {
    prefix: String,
    responder: Responder,
    remaining: Option<usize>,
}

/// A scripted runner for unit tests: answers by the longest matching
/// command-line prefix (successful empty output when nothing matches) and
/// records every command line it was given.
#[derive(Clone, Default)]
pub struct FakeRunner {
    rules: Arc<Mutex<Vec<Rule>>>,
    calls: Arc<Mutex<Vec<Command>>>,
    failures: Arc<Mutex<VecDeque<String>>>,
}

impl fmt::Debug for FakeRunner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeRunner")
            .field("calls", &self.calls())
            .finish()
    }
}

impl FakeRunner {
    /// A runner where every command succeeds with empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers commands whose command line starts with `prefix` with `output`.
    pub fn on(&self, prefix: &str, output: Output) -> &Self {
        self.on_with(prefix, move |_| output.clone())
    }

    /// Answers the next `times` matching commands with `output`, then falls
    /// back to other rules.
    pub fn on_times(&self, prefix: &str, times: usize, output: Output) -> &Self {
        self.push_rule(prefix, Box::new(move |_| output.clone()), Some(times));
        self
    }

    /// Answers matching commands with a function of the command.
    pub fn on_with(
        &self,
        prefix: &str,
        f: impl Fn(&Command) -> Output + Send + Sync + 'static,
    ) -> &Self {
        self.push_rule(prefix, Box::new(f), None);
        self
    }

    fn push_rule(&self, prefix: &str, responder: Responder, remaining: Option<usize>) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.push(Rule {
                prefix: prefix.to_owned(),
                responder,
                remaining,
            });
        }
    }

    /// Makes the next command whose line starts with `prefix` fail to spawn.
    pub fn fail_spawn_once(&self, prefix: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.push_back(prefix.to_owned());
        }
    }

    /// Every command line run so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .map(|c| c.iter().map(Command::command_line).collect())
            .unwrap_or_default()
    }

    /// Every command run so far (with env and stdin).
    pub fn commands(&self) -> Vec<Command> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        if let Ok(mut c) = self.calls.lock() {
            c.clear();
        }
    }
}

/// The stdin of a [`FakeRunner`] piped child: collects what is written.
#[derive(Clone, Debug, Default)]
struct Collected(Arc<Mutex<Vec<u8>>>);

impl AsyncWrite for Collected {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[async_trait::async_trait]
impl CommandRunner for FakeRunner {
    /// Collects the streamed stdin; when the child is finished, the command
    /// (with the bytes as its `stdin`) is recorded and answered like
    /// [`CommandRunner::run`].
    async fn spawn_piped(&self, cmd: &Command) -> Result<PipedChild, ExecError> {
        let collected = Collected::default();
        let runner = self.clone();
        let cmd = cmd.clone();
        let bytes = collected.clone();
        Ok(PipedChild::new(
            cmd.command_line(),
            Box::new(collected),
            move || {
                Box::pin(async move {
                    let stdin = bytes.0.lock().map(|b| b.clone()).unwrap_or_default();
                    runner.run(&cmd.stdin(stdin)).await
                })
            },
        ))
    }

    /// Answers like [`CommandRunner::run`] when started: the scripted
    /// `stdout` is what the child streams, and the rest of the output is
    /// returned by `finish` (with `stdout` emptied).
    async fn spawn_reading(&self, cmd: &Command) -> Result<ReadingChild, ExecError> {
        let mut out = self.run(cmd).await?;
        let stdout = std::mem::take(&mut out.stdout).into_bytes();
        Ok(ReadingChild::new(
            cmd.command_line(),
            Box::new(std::io::Cursor::new(stdout)),
            move || Box::pin(async move { Ok(out) }),
        ))
    }

    async fn run(&self, cmd: &Command) -> Result<Output, ExecError> {
        let line = cmd.command_line();
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(cmd.clone());
        }
        if let Ok(mut failures) = self.failures.lock()
            && let Some(pos) = failures.iter().position(|p| line.starts_with(p.as_str()))
        {
            failures.remove(pos);
            return Err(ExecError::Spawn {
                program: cmd.program.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "scripted spawn failure"),
            });
        }
        let Ok(mut rules) = self.rules.lock() else {
            return Ok(Output::ok(""));
        };
        let best = rules
            .iter_mut()
            .enumerate()
            .filter(|(_, r)| line.starts_with(r.prefix.as_str()) && r.remaining != Some(0))
            // Longest prefix wins; among equals, the one registered first.
            .max_by(|(ia, a), (ib, b)| a.prefix.len().cmp(&b.prefix.len()).then(ib.cmp(ia)));
        match best {
            Some((_, rule)) => {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                Ok((rule.responder)(cmd))
            }
            None => Ok(Output::ok("")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn host_runner_passes_arguments_verbatim() {
        let runner = HostRunner::new();
        let out = runner
            .run(&Command::new("printf").args(["%s|", "a b", "$HOME", ";rm -rf /"]))
            .await
            .unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "a b|$HOME|;rm -rf /|");
    }

    #[tokio::test]
    async fn host_runner_reports_exit_codes_and_missing_programs() {
        let runner = HostRunner::new();
        let out = runner
            .run(&Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
            .await
            .unwrap();
        assert_eq!(out.code, 3);
        assert_eq!(out.stderr, "oops\n");
        let err = runner
            .run_checked(&Command::new("sh").args(["-c", "exit 2"]))
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), Some(2));
        let err = runner
            .run(&Command::new("definitely-not-a-program-xyz"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn host_runner_feeds_stdin_and_times_out() {
        let runner = HostRunner::new();
        let out = runner
            .run(&Command::new("cat").stdin(b"hello".to_vec()))
            .await
            .unwrap();
        assert_eq!(out.stdout, "hello");
        let err = runner
            .run(
                &Command::new("sleep")
                    .arg("5")
                    .timeout(Duration::from_millis(100)),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::Timeout { .. }));
    }

    #[tokio::test]
    async fn piped_children_get_streamed_stdin() {
        use tokio::io::AsyncWriteExt;
        let runner = HostRunner::new();
        let mut child = runner
            .spawn_piped(&Command::new("sh").args(["-c", "wc -c; echo done >&2"]))
            .await
            .unwrap();
        // More than a pipe holds, in pieces.
        for _ in 0..64 {
            child.stdin().write_all(&[b'x'; 4096]).await.unwrap();
        }
        let out = child.finish_checked().await.unwrap();
        assert_eq!(out.stdout.trim(), "262144");
        assert_eq!(out.stderr, "done\n");
        let child = runner
            .spawn_piped(&Command::new("sh").args(["-c", "cat >/dev/null; exit 4"]))
            .await
            .unwrap();
        assert_eq!(
            child.finish_checked().await.unwrap_err().exit_code(),
            Some(4)
        );
        let err = runner
            .spawn_piped(&Command::new("definitely-not-a-program-xyz"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);

        let fake = FakeRunner::new();
        fake.on("rbd import", Output::ok("imported"));
        let mut child = fake
            .spawn_piped(&Command::new("rbd").args(["import", "-", "volume-1"]))
            .await
            .unwrap();
        child.stdin().write_all(b"data").await.unwrap();
        assert_eq!(child.finish().await.unwrap().stdout, "imported");
        assert_eq!(fake.commands()[0].stdin.as_deref(), Some(&b"data"[..]));
    }

    #[tokio::test]
    async fn reading_children_stream_stdout() {
        use tokio::io::AsyncReadExt;
        let runner = HostRunner::new();
        let mut child = runner
            .spawn_reading(
                &Command::new("sh").args(["-c", "head -c 300000 /dev/zero; echo done >&2"]),
            )
            .await
            .unwrap();
        let mut bytes = Vec::new();
        child.stdout().read_to_end(&mut bytes).await.unwrap();
        assert_eq!(bytes.len(), 300_000);
        let out = child.finish_checked().await.unwrap();
        assert_eq!(out.stderr, "done\n");
        let mut child = runner
            .spawn_reading(
                &Command::new("sh")
                    .args(["-c", "cat; exit 5"])
                    .stdin(b"in".to_vec()),
            )
            .await
            .unwrap();
        let mut text = String::new();
        child.stdout().read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "in");
        assert_eq!(
            child.finish_checked().await.unwrap_err().exit_code(),
            Some(5)
        );

        let fake = FakeRunner::new();
        fake.on("rbd export", Output::ok("image bytes"));
        let mut child = fake
            .spawn_reading(&Command::new("rbd").args(["export", "volume-1", "-"]))
            .await
            .unwrap();
        let mut text = String::new();
        child.stdout().read_to_string(&mut text).await.unwrap();
        assert_eq!(text, "image bytes");
        assert!(child.finish().await.unwrap().success());
        assert_eq!(fake.calls(), ["rbd export volume-1 -"]);
    }

    #[tokio::test]
    async fn fake_runner_scripts_and_records() {
        let fake = FakeRunner::new();
        fake.on("lvs", Output::ok("{}"));
        fake.on_times("lvcreate -n a", 1, Output::failed(5, "exists"));
        assert_eq!(
            fake.run(&Command::new("lvs").arg("--reportformat"))
                .await
                .unwrap()
                .stdout,
            "{}"
        );
        assert_eq!(
            fake.run(&Command::new("lvcreate").args(["-n", "a"]))
                .await
                .unwrap()
                .code,
            5
        );
        assert_eq!(
            fake.run(&Command::new("lvcreate").args(["-n", "a"]))
                .await
                .unwrap()
                .code,
            0
        );
        fake.fail_spawn_once("tgt-admin");
        assert!(fake.run(&Command::new("tgt-admin")).await.is_err());
        assert!(fake.run(&Command::new("tgt-admin")).await.is_ok());
        assert_eq!(
            fake.calls(),
            [
                "lvs --reportformat",
                "lvcreate -n a",
                "lvcreate -n a",
                "tgt-admin",
                "tgt-admin"
            ]
        );
    }
}
