#!/usr/bin/env python3
"""A stand-in for Claude Code that calls its hooks the way the real one does.

It reads `--settings FILE`, runs the configured `command` hooks with the event's JSON on stdin
(`hook_event_name`, `session_id`, `transcript_path`, `cwd` and the event's own fields), honours
their exit codes (2 blocks) and JSON decisions, and writes a transcript JSONL whose assistant
messages carry usage (each message on two lines with the same id, as content blocks are).

Interactive only. Each line typed is a prompt:
  tool CMD   asks to run CMD with the Bash tool (PreToolUse, then PermissionRequest; without a
             decision from the hooks it shows its own dialog and reads y/n)
  spend N    answers with N output tokens
  idle       sends an idle_prompt notification
  anything   answered with "you said: ..."
Every turn ends with the Stop hook. Ctrl-C prints "interrupted by Ctrl-C"; a hang-up ends it.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid

args = sys.argv[1:]
settings = {}
if "--settings" in args:
    with open(args[args.index("--settings") + 1]) as f:
        settings = json.load(f)
hooks = settings.get("hooks", {})
session_id = str(uuid.uuid4())
transcript = os.path.join(tempfile.gettempdir(), f"stand-in-{session_id}.jsonl")
open(transcript, "w").close()
messages = 0


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run_hooks(event, fields, target=None):
    payload = dict(
        session_id=session_id,
        transcript_path=transcript,
        cwd=os.getcwd(),
        hook_event_name=event,
        **fields,
    )
    results = []
    for entry in hooks.get(event, []):
        matcher = entry.get("matcher", "")
        if matcher not in ("", "*") and target is not None and not re.fullmatch(matcher, target):
            continue
        for hook in entry.get("hooks", []):
            if hook.get("type") != "command":
                continue
            try:
                done = subprocess.run(
                    hook["command"],
                    shell=True,
                    input=json.dumps(payload),
                    capture_output=True,
                    text=True,
                    timeout=hook.get("timeout", 60),
                )
                results.append((done.returncode, done.stdout, done.stderr))
            except subprocess.TimeoutExpired:
                results.append((None, "", "timed out"))
    return results


def decision(results, event):
    """(behavior, message) from the hooks' exit codes and JSON, or None."""
    for code, out, err in results:
        if code == 2:
            return ("deny", err.strip())
        if code != 0 or not out.strip():
            continue
        try:
            specific = json.loads(out).get("hookSpecificOutput", {})
        except ValueError:
            continue
        if event == "PermissionRequest":
            chosen = specific.get("decision") or {}
            if chosen.get("behavior") in ("allow", "deny"):
                return (chosen["behavior"], chosen.get("message", ""))
        elif event == "PreToolUse" and specific.get("permissionDecision"):
            return (specific["permissionDecision"], specific.get("permissionDecisionReason", ""))
    return None


def answer(text, output_tokens):
    global messages
    messages += 1
    line = json.dumps({
        "type": "assistant",
        "message": {
            "id": f"msg_{messages}",
            "model": "claude-sonnet-4-5",
            "role": "assistant",
            "content": [{"type": "text", "text": text}],
            "usage": {"input_tokens": 100, "output_tokens": output_tokens},
        },
    })
    with open(transcript, "a") as f:
        f.write(line + "\n" + line + "\n")
    say(text)


def use_bash(command):
    tool = {"tool_name": "Bash", "tool_input": {"command": command}}
    early = decision(run_hooks("PreToolUse", tool, "Bash"), "PreToolUse")
    if early and early[0] == "deny":
        say(f"blocked by a hook: {early[1]}")
        return
    chosen = decision(run_hooks("PermissionRequest", tool, "Bash"), "PermissionRequest")
    if chosen is None:
        run_hooks(
            "Notification",
            {"message": "Claude needs your permission to use Bash", "notification_type": "permission_prompt"},
            "permission_prompt",
        )
        say(f"Allow Bash: {command}? [y/n]")
        typed = sys.stdin.readline().strip()
        chosen = ("allow", "") if typed == "y" else ("deny", "denied at the terminal")
    if chosen[0] == "allow":
        out = subprocess.run(command, shell=True, capture_output=True, text=True).stdout
        say(f"ran: {command}")
        sys.stdout.write(out)
        run_hooks("PostToolUse", dict(tool, tool_response={"stdout": out}), "Bash")
        answer("the tool ran", 20)
    else:
        say(f"denied: {chosen[1]}")
        answer("the tool was denied", 20)


signal.signal(signal.SIGINT, lambda *_: say("interrupted by Ctrl-C"))
say("stand-in claude ready")
run_hooks("SessionStart", {"source": "startup"}, "startup")
while True:
    line = sys.stdin.readline()
    if not line:
        break
    prompt = line.strip()
    run_hooks("UserPromptSubmit", {"prompt": prompt})
    if prompt.startswith("tool "):
        use_bash(prompt[5:])
    elif prompt.startswith("spend "):
        answer(f"spent {prompt[6:]}", int(prompt[6:]))
    elif prompt == "idle":
        run_hooks(
            "Notification",
            {"message": "Claude is waiting for your input", "notification_type": "idle_prompt"},
            "idle_prompt",
        )
        say("idle notified")
        continue
    else:
        answer(f"you said: {prompt}", 10)
    run_hooks("Stop", {"stop_hook_active": False})
run_hooks("SessionEnd", {"reason": "other"})
