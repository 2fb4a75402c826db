//! The e2e harness itself (tests/support): every process a stack starts stays in the process
//! group the harness made for it, so one `kill(-pgid)` stops it all; a restart and a drop leave
//! no wrangler, workerd or ses-local behind. Looked up with POSIX `ps`, not procfs.

mod support;

use std::process::Command;

use support::{get, group_exists, Spec, Stack};

/// Every process as (pid, parent pid, process group, command name), from POSIX `ps`.
fn processes() -> Vec<(i32, i32, i32, String)> {
    let output = Command::new("ps")
        .args(["-A", "-o", "pid=,ppid=,pgid=,comm="])
        .output()
        .expect("run ps");
    assert!(output.status.success(), "ps failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mut number = || fields.next()?.parse::<i32>().ok();
            let (pid, ppid, pgid) = (number()?, number()?, number()?);
            let comm = fields.collect::<Vec<_>>().join(" ");
            Some((pid, ppid, pgid, comm))
        })
        .collect()
}

/// The processes below `root` (not `root` itself): their pid, process group and command name.
fn descendants(root: i32) -> Vec<(i32, i32, String)> {
    let all = processes();
    let mut found: Vec<(i32, i32, String)> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for (pid, ppid, pgid, comm) in &all {
            if *ppid == parent {
                found.push((*pid, *pgid, comm.clone()));
                parents.push(*pid);
            }
        }
    }
    found
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence; no memory is involved.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[test]
fn every_process_wrangler_dev_starts_stays_in_its_group_and_none_outlives_a_restart_or_the_stack() {
    let mut stack = Stack::start("harness-groups", Spec::default());
    let (wrangler, ses_local) = stack.process_groups();
    let wrangler = wrangler.expect("wrangler is running");

    let tree = descendants(wrangler);
    assert!(
        tree.iter().any(|(_, _, comm)| comm.contains("workerd")),
        "wrangler dev runs workerd below it: {tree:?}"
    );
    for (pid, pgid, comm) in &tree {
        assert_eq!(
            *pgid, wrangler,
            "{comm} ({pid}) left wrangler's process group: kill(-pgid) would miss it"
        );
    }

    stack.restart_worker();
    assert!(!group_exists(wrangler), "the old wrangler's group is gone");
    for (pid, _, comm) in &tree {
        assert!(!alive(*pid), "{comm} ({pid}) outlived the restart");
    }
    assert_eq!(
        get(&format!("{}/healthz", stack.worker)).map(|r| r.status),
        Some(200),
        "the restarted Worker answers"
    );
    let (restarted, _) = stack.process_groups();
    let restarted = restarted.expect("wrangler is running again");
    let tree = descendants(restarted);
    assert!(
        tree.iter().all(|(_, pgid, _)| *pgid == restarted),
        "{tree:?}"
    );

    drop(stack);
    for group in [restarted, ses_local] {
        assert!(
            !group_exists(group),
            "process group {group} outlived the stack"
        );
    }
    for (pid, _, comm) in &tree {
        assert!(!alive(*pid), "{comm} ({pid}) outlived the stack");
    }
}
