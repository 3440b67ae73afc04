//! The git lines of a venv service's pins (`hsm.locks/<service>/requirements.txt`):
//! a dependency that pip installed from a git URL is pinned as
//! `name @ git+URL@<commit>[#subdirectory=DIR]`, the form `pip freeze`
//! writes, beside the `name==version` lines of what came from an index.
//! Read by the venv runtime (to install those commits) and by the
//! inspector (to notice a checkout of another commit).

use super::installed::Installed;

/// The pins file of a git-sourced venv service, in `hsm.locks/<service>/`.
pub const FILE: &str = "requirements.txt";
use super::normalize_name;

/// One git-URL dependency pinned at its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitPin {
    /// PEP 503 normalised.
    pub name: String,
    /// As pip recorded it (`direct_url.json`), without `git+`.
    pub url: String,
    pub commit: String,
    pub subdirectory: Option<String>,
    /// The ref the requirement named when it was pinned (a branch, a tag):
    /// the pin holds while the requirement names the same one.
    pub reference: Option<String>,
}

/// A git URL requirement as written: `name @ git+URL[@REF][#subdirectory=DIR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitReq {
    /// PEP 503 normalised.
    pub name: String,
    /// Without `git+` and without the ref.
    pub url: String,
    pub subdirectory: Option<String>,
    pub reference: Option<String>,
}

impl GitReq {
    /// Whether `pin` pins this requirement: the same repository and
    /// directory, and the ref it was pinned for.
    pub fn pinned_by(&self, pin: &GitPin) -> bool {
        self.same_source(pin) && self.reference == pin.reference
    }

    fn same_source(&self, pin: &GitPin) -> bool {
        self.name == pin.name && self.url == pin.url && self.subdirectory == pin.subdirectory
    }
}

/// What `pin` is pinned for in `wanted` (the git requirements the service
/// names itself): `Some(true)` when one of them names its repository and
/// ref, `Some(false)` when one names its repository with another ref,
/// `None` when none names it (a dependency of a dependency).
pub fn wanted_by(pin: &GitPin, wanted: &[GitReq]) -> Option<bool> {
    let same: Vec<&GitReq> = wanted.iter().filter(|r| r.same_source(pin)).collect();
    match same.is_empty() {
        true => None,
        false => Some(same.iter().any(|r| r.pinned_by(pin))),
    }
}

impl GitPin {
    /// The requirement that installs exactly this commit.
    pub fn requirement(&self) -> String {
        let mut s = format!("{} @ git+{}@{}", self.name, self.url, self.commit);
        if let Some(sub) = &self.subdirectory {
            s.push_str(&format!("#subdirectory={sub}"));
        }
        s
    }

    /// Its line in the pins file: the requirement, and the ref it was
    /// pinned for in a comment (pip ignores it).
    pub fn line(&self) -> String {
        match &self.reference {
            Some(r) => format!("{}  # ref: {r}", self.requirement()),
            None => self.requirement(),
        }
    }

    /// The pin of an installed distribution that pip took from git, if it
    /// is one; `reference`: the ref it was asked for, when known.
    pub fn of(name: &str, d: &Installed, reference: Option<String>) -> Option<GitPin> {
        let v = d.vcs.as_ref()?;
        Some(GitPin {
            name: name.to_string(),
            url: v.url.clone(),
            commit: v.commit.clone(),
            subdirectory: v.subdirectory.clone(),
            reference,
        })
    }

    /// Whether `d` is installed from this pin's repository and directory,
    /// at its commit.
    pub fn holds(&self, d: Option<&Installed>) -> bool {
        d.and_then(|d| d.vcs.as_ref()).is_some_and(|v| {
            v.url == self.url && v.commit == self.commit && v.subdirectory == self.subdirectory
        })
    }
}

/// A git URL requirement `name @ git+URL[@REF][#subdirectory=DIR]`.
pub fn git_requirement(line: &str) -> Option<GitReq> {
    let line = line.split(" #").next().unwrap_or(line).trim();
    let (name, rest) = line.split_once(" @ ").or_else(|| line.split_once('@'))?;
    let rest = rest.trim().strip_prefix("git+")?;
    let (url_ref, fragment) = match rest.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (rest, None),
    };
    let subdirectory = fragment
        .into_iter()
        .flat_map(|f| f.split('&'))
        .find_map(|kv| kv.strip_prefix("subdirectory="))
        .map(str::to_string);
    // The ref follows the last `@` after the host (`ssh://git@host/r@v1`).
    let after_scheme = url_ref.find("://").map_or(0, |i| i + 3);
    let path_start = url_ref[after_scheme..]
        .find('/')
        .map_or(url_ref.len(), |i| after_scheme + i);
    let (url, reference) = match url_ref[path_start..].rfind('@') {
        Some(i) => (
            &url_ref[..path_start + i],
            Some(url_ref[path_start + i + 1..].to_string()),
        ),
        None => (url_ref, None),
    };
    let name = name.trim();
    let name = name.split('[').next().unwrap_or(name).trim();
    if name.is_empty() || url.is_empty() {
        return None;
    }
    Some(GitReq {
        name: normalize_name(name),
        url: url.to_string(),
        subdirectory,
        reference: reference.filter(|r| !r.is_empty()),
    })
}

/// The git requirements in the text of a requirements file.
pub fn git_requirements(text: &str) -> Vec<GitReq> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('-'))
        .filter_map(git_requirement)
        .collect()
}

/// The git pins in the text of a pins file.
pub fn read(text: &str) -> Vec<GitPin> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && l.contains(" @ git+"))
        .filter_map(|l| {
            let (req, comment) = match l.split_once("  # ref: ") {
                Some((r, c)) => (r, Some(c.trim().to_string())),
                None => (l, None),
            };
            let r = git_requirement(req)?;
            Some(GitPin {
                name: r.name,
                url: r.url,
                commit: r.reference?,
                subdirectory: r.subdirectory,
                reference: comment,
            })
        })
        .collect()
}

/// The lines of a pins file that pip takes as constraints (`name==version`):
/// a URL constraint would conflict with the branch a requirement names.
pub fn constraints(text: &str) -> String {
    text.lines()
        .filter(|l| !l.contains(" @ git+"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The URL pip is given for a git source's `url`: pip takes a `file:` URL
/// only with a host (`file://localhost/…`), and no bare path.
pub fn pip_url(url: &str) -> String {
    if let Some(path) = url.strip_prefix("file:///") {
        format!("file://localhost/{path}")
    } else if url.starts_with('/') {
        format!("file://localhost{url}")
    } else {
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_round_trips_through_its_line() {
        let p = GitPin {
            name: "delta-lib".into(),
            url: "ssh://git@host:2222/org/delta.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            subdirectory: Some("py".into()),
            reference: Some("main".into()),
        };
        let bare = GitPin {
            reference: None,
            ..p.clone()
        };
        let text = format!("# header\nalpha==1.0\n{}\n{}\n", p.line(), bare.line());
        assert_eq!(read(&text), vec![p.clone(), bare]);
        assert_eq!(constraints(&text), "# header\nalpha==1.0\n");
        let req = git_requirement(
            "delta-lib @ git+ssh://git@host:2222/org/delta.git@main#subdirectory=py",
        )
        .unwrap();
        assert!(req.pinned_by(&p));
        assert_eq!(wanted_by(&p, std::slice::from_ref(&req)), Some(true));
        let next = GitReq {
            reference: Some("next".into()),
            ..req
        };
        assert_eq!(wanted_by(&p, &[next]), Some(false));
        assert_eq!(wanted_by(&p, &[]), None);
    }

    #[test]
    fn git_requirements_lose_their_ref_and_keep_the_user_of_the_host() {
        let r = git_requirement("Delta_Lib[x] @ git+ssh://git@h/r.git@main#subdirectory=s&egg=d")
            .unwrap();
        assert_eq!(
            (
                r.name.as_str(),
                r.url.as_str(),
                r.subdirectory.as_deref(),
                r.reference.as_deref()
            ),
            ("delta-lib", "ssh://git@h/r.git", Some("s"), Some("main"))
        );
        let r = git_requirement("delta @ git+file://localhost/x/d.git").unwrap();
        assert_eq!(
            (r.url.as_str(), r.reference),
            ("file://localhost/x/d.git", None)
        );
        assert_eq!(git_requirement("delta==1.0"), None);
        assert_eq!(git_requirement("delta @ https://h/d.whl"), None);
        assert_eq!(
            git_requirements("--no-index\n# c\nalpha\ne @ git+https://h/e.git@v1  # x\n").len(),
            1
        );
    }

    #[test]
    fn file_urls_get_the_host_pip_needs() {
        assert_eq!(pip_url("file:///x/d.git"), "file://localhost/x/d.git");
        assert_eq!(pip_url("/x/d.git"), "file://localhost/x/d.git");
        assert_eq!(pip_url("https://h/d.git"), "https://h/d.git");
    }
}
