//! The manual pages and shell completions that `examples/gen-manual.rs`
//! writes from the clap definitions: each man page names every long
//! option its program's `--help` lists, and bash accepts the completion
//! scripts (`bash -n`).

mod common;

use std::process::{Command, Stdio};

use common::{example, TempDir};

/// The long options a program's `--help` lists, one per option line.
fn long_options(program: &str) -> Vec<String> {
    let out = Command::new(example(program))
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .expect("run --help");
    assert!(out.status.success(), "{program} --help");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let at = l.find("--")?;
            let name: String = l[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            Some(name)
        })
        .collect()
}

#[test]
fn man_pages_name_every_long_option_and_bash_accepts_the_completions() {
    let dir = TempDir::new("manual");
    let out = Command::new(example("gen-manual"))
        .arg("--prefix")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run gen-manual");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let share = dir.join("share");
    for program in ["tcpvsadm", "ktcpvsd"] {
        let page = std::fs::read_to_string(share.join(format!("man/man8/{program}.8")))
            .expect("the man page");
        assert!(page.contains(&format!(".TH {program} 8")), "{page}");
        let options = long_options(program);
        assert!(options.len() > 10, "{program}: {options:?}");
        for option in options {
            // roff writes each '-' as '\-'.
            let roff = format!("--{option}").replace('-', "\\-");
            assert!(page.contains(&roff), "{program}.8 lacks --{option}");
        }
        let bash = share.join(format!("bash-completion/completions/{program}"));
        let status = Command::new("bash")
            .arg("-n")
            .arg(&bash)
            .status()
            .expect("run bash -n");
        assert!(status.success(), "bash -n {}", bash.display());
        let script = std::fs::read_to_string(&bash).unwrap();
        assert!(script.contains("--dry-run") || program != "tcpvsadm");
        for other in [
            format!("zsh/site-functions/_{program}"),
            format!("fish/vendor_completions.d/{program}.fish"),
        ] {
            let text = std::fs::read_to_string(share.join(&other)).expect(&other);
            assert!(
                text.contains("--help") || text.contains("-l help"),
                "{other}"
            );
        }
    }
}
