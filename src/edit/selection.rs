//! Edits of the manifest's selection: `[libraries]`, `[services]`, `[modes]`.

use toml_edit::{InlineTable, Item, Table, TableLike, Value};

use super::{array, section, Session};
use crate::error::{Error, Result};
use crate::manifest::model::{GroupEntry, Mode, Strategy};
use crate::manifest::Entry;
use crate::names;

/// Libraries go into the shared environment; services get their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Library,
    Service,
}

impl Component {
    pub fn word(self) -> &'static str {
        match self {
            Component::Library => "library",
            Component::Service => "service",
        }
    }
    /// The manifest section that selects this kind.
    pub fn section(self) -> &'static str {
        match self {
            Component::Library => "libraries",
            Component::Service => "services",
        }
    }
    fn group_word(self) -> &'static str {
        match self {
            Component::Library => "library group",
            Component::Service => "service group",
        }
    }
}

fn known(s: &Session, kind: Component) -> Vec<String> {
    match kind {
        Component::Library => s.loaded.registry.libraries.keys().cloned().collect(),
        Component::Service => s.loaded.registry.services.keys().cloned().collect(),
    }
}

/// Refuses a name the registry does not define, with a "did you mean".
pub fn require_component(s: &Session, kind: Component, name: &str) -> Result<()> {
    names::validate(name)
        .map_err(|why| Error::config(format!("invalid {} name: {why}", kind.word())))?;
    let known = known(s, kind);
    if known.iter().any(|k| k == name) {
        return Ok(());
    }
    let mut e = Error::config(format!(
        "unknown {} `{name}`: it is not in the registry",
        kind.word()
    ));
    e = match names::did_you_mean(name, known.iter().map(String::as_str)) {
        Some(k) => e.with_help(format!("did you mean `{k}`?")),
        None => e.with_help(format!(
            "register it first: `cargo hsm registry {} add {name} …`, or create it with `cargo hsm {} init {name}`",
            kind.word(),
            kind.word()
        )),
    };
    Err(e)
}

/// The registry entry of a group, with its kind; `kind` settles a name that
/// is both a library group and a service group.
pub fn require_group(
    s: &Session,
    kind: Option<Component>,
    group: &str,
) -> Result<(Component, Entry<GroupEntry>)> {
    let reg = &s.loaded.registry;
    let lib = reg.library_groups.get(group);
    let svc = reg.service_groups.get(group);
    match (kind, lib, svc) {
        (Some(Component::Library), Some(e), _) | (None, Some(e), None) => {
            Ok((Component::Library, e.clone()))
        }
        (Some(Component::Service), _, Some(e)) | (None, None, Some(e)) => {
            Ok((Component::Service, e.clone()))
        }
        (None, Some(_), Some(_)) => Err(Error::config(format!(
            "`{group}` is both a library group and a service group"
        ))
        .with_help("say which one with `--kind library` or `--kind service`")),
        _ => {
            let known: Vec<&str> = match kind {
                Some(Component::Library) => reg.library_groups.keys().map(String::as_str).collect(),
                Some(Component::Service) => reg.service_groups.keys().map(String::as_str).collect(),
                None => reg
                    .library_groups
                    .keys()
                    .chain(reg.service_groups.keys())
                    .map(String::as_str)
                    .collect(),
            };
            let what = kind.map(Component::group_word).unwrap_or("group");
            let mut e = Error::config(format!(
                "unknown {what} `{group}`: it is not in the registry"
            ));
            e = match names::did_you_mean(group, known) {
                Some(k) => e.with_help(format!("did you mean `{k}`?")),
                None => e.with_help(format!(
                    "define it first: `cargo hsm registry group add {group} --kind library|service --strategy 1-of-N --option …`"
                )),
            };
            Err(e)
        }
    }
}

fn require_option(kind: Component, group: &str, entry: &GroupEntry, option: &str) -> Result<()> {
    if entry.options.iter().any(|o| o.name == option) {
        return Ok(());
    }
    let list: Vec<&str> = entry.options.iter().map(|o| o.name.as_str()).collect();
    let mut e = Error::config(format!(
        "the {} `{group}` has no option `{option}`; its options are: {}",
        kind.group_word(),
        if list.is_empty() {
            "(none)".to_string()
        } else {
            list.join(", ")
        }
    ));
    e = match names::did_you_mean(option, list.iter().copied()) {
        Some(k) => e.with_help(format!("did you mean `{k}`?")),
        None => e.with_help(format!(
            "add the option to the group's registry entry (`options` of `{group}`) first"
        )),
    };
    Err(e)
}

fn value_name(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.value().as_str()),
        Value::InlineTable(t) => t.get("name").and_then(Value::as_str),
        _ => None,
    }
}

/// The `standalone` array of a section, created when missing.
fn standalone(m: &mut Table, kind: Component) -> Result<&mut toml_edit::Array> {
    let sec = section(m, kind.section(), kind.section())?;
    if !sec.contains_key("standalone") {
        sec.insert("standalone", toml_edit::value(toml_edit::Array::new()));
    }
    sec.get_mut("standalone")
        .and_then(Item::as_array_mut)
        .ok_or_else(|| Error::config(format!("`{}.standalone` is not an array", kind.section())))
}

fn find_standalone(m: &Table, kind: Component, name: &str) -> Option<usize> {
    m.get(kind.section())?
        .get("standalone")?
        .as_array()?
        .iter()
        .position(|v| value_name(v) == Some(name))
}

/// Selects a component on its own (`standalone`), optionally with a mode
/// and (services) a profile. Already selected: only mode/profile are set.
pub fn add(
    s: &mut Session,
    kind: Component,
    name: &str,
    mode: Option<Mode>,
    profile: Option<&str>,
) -> Result<()> {
    require_component(s, kind, name)?;
    if let Some(p) = profile {
        let e = &s.loaded.registry.services[name].value;
        if !e.deployment_profiles.is_empty() && !e.deployment_profiles.contains_key(p) {
            let list: Vec<&str> = e.deployment_profiles.keys().map(String::as_str).collect();
            return Err(Error::config(format!(
                "service `{name}` has no deployment profile `{p}`; its profiles are: {}",
                list.join(", ")
            )));
        }
    }
    add_unchecked(s, kind, name, mode, profile)
}

/// [`add`] without checking the name against the loaded registry: for an
/// entry registered in the same session (validated when it commits).
pub fn add_unchecked(
    s: &mut Session,
    kind: Component,
    name: &str,
    mode: Option<Mode>,
    profile: Option<&str>,
) -> Result<()> {
    let m = s.manifest()?;
    let arr = standalone(m, kind)?;
    let idx = arr.iter().position(|v| value_name(v) == Some(name));
    let i = match idx {
        Some(i) => i,
        None => {
            array::push(arr, Value::from(name));
            arr.len() - 1
        }
    };
    if let Some(mode) = mode {
        set_entry_key(arr, i, "mode", mode.as_str());
    }
    if let Some(p) = profile {
        set_entry_key(arr, i, "profile", p);
    }
    Ok(())
}

/// Sets `key` of the standalone entry `i`, turning `"name"` into
/// `{ name = "name", key = … }` when needed.
fn set_entry_key(arr: &mut toml_edit::Array, i: usize, key: &str, value: &str) {
    let Some(v) = arr.get_mut(i) else { return };
    if let Value::String(st) = v {
        let name = st.value().clone();
        let decor = st.decor().clone();
        let mut t = InlineTable::new();
        t.insert("name", Value::from(name));
        t.fmt();
        let mut nv = Value::InlineTable(t);
        *nv.decor_mut() = decor;
        *v = nv;
    }
    if let Value::InlineTable(t) = v {
        if t.get(key).and_then(Value::as_str) != Some(value) {
            match t.get_mut(key) {
                Some(old) => {
                    let decor = old.decor().clone();
                    *old = Value::from(value);
                    *old.decor_mut() = decor;
                }
                None => {
                    t.insert(key, Value::from(value));
                    // keep `{ name = "x", mode = "dev" }` spacing
                    if let Some((_, last)) = t.iter_mut().last() {
                        last.decor_mut().set_prefix(" ");
                        last.decor_mut().set_suffix(" ");
                    }
                    let n = t.len();
                    for (j, (_, val)) in t.iter_mut().enumerate() {
                        if j + 1 < n && val.decor().suffix().and_then(|s| s.as_str()) == Some(" ") {
                            val.decor_mut().set_suffix("");
                        }
                    }
                }
            }
        }
    }
}

/// The error for removing a name the registry does not define: not the
/// "register it first" of adding one, but what is there to remove.
pub fn unknown_for_removal(s: &Session, kind: Component, name: &str) -> Error {
    let e = Error::config(format!(
        "there is no {} `{name}` to remove: it is neither selected nor in the registry",
        kind.word()
    ));
    let known = known(s, kind);
    match names::did_you_mean(name, known.iter().map(String::as_str)) {
        Some(k) => e.with_help(format!("did you mean `{k}`?")),
        None => e.with_help("`cargo hsm list` shows what is selected"),
    }
}

/// Whether `name` is a registered `kind`.
pub fn is_known(s: &Session, kind: Component, name: &str) -> bool {
    known(s, kind).iter().any(|k| k == name)
}

/// Whether the manifest selects `name` on its own (`standalone`).
pub fn is_standalone(s: &Session, kind: Component, name: &str) -> bool {
    match kind {
        Component::Library => s
            .loaded
            .manifest
            .libraries
            .standalone
            .iter()
            .any(|l| l.name == name),
        Component::Service => s
            .loaded
            .manifest
            .services
            .standalone
            .iter()
            .any(|l| l.name == name),
    }
}

/// Removes `name` from `[modes]` (it left the selection for good).
pub fn forget_mode(s: &mut Session, name: &str) -> Result<()> {
    remove_modes_key(s.manifest()?, name)
}

fn remove_modes_key(m: &mut Table, name: &str) -> Result<()> {
    let empty = match m.get_mut("modes").and_then(Item::as_table_like_mut) {
        Some(t) => {
            t.remove(name);
            t.is_empty()
        }
        None => false,
    };
    if empty {
        m.remove("modes");
    }
    Ok(())
}

/// What `[modes]` says for `name`, if anything.
fn modes_value(m: &Table, name: &str) -> Option<String> {
    m.get("modes")?.get(name)?.as_str().map(str::to_string)
}

/// Sets the mode of the standalone entry `i`. `prod`, the default, is
/// written by removing the key (and `{ name = "x" }` becomes `"x"` again),
/// unless `[modes]` says otherwise for the name: switching to dev and back
/// leaves the file as it was.
fn set_entry_mode(m: &mut Table, kind: Component, i: usize, name: &str, mode: Mode) -> Result<()> {
    let explicit =
        mode != Mode::Prod || modes_value(m, name).is_some_and(|v| v != Mode::Prod.as_str());
    let arr = standalone(m, kind)?;
    if explicit {
        set_entry_key(arr, i, "mode", mode.as_str());
        return Ok(());
    }
    let Some(v) = arr.get_mut(i) else {
        return Ok(());
    };
    if let Value::InlineTable(t) = v {
        if t.remove("mode").is_none() {
            return Ok(());
        }
        if t.len() == 1 && t.contains_key("name") {
            let decor = t.decor().clone();
            let mut nv = Value::from(name);
            *nv.decor_mut() = decor;
            *v = nv;
        } else {
            t.fmt();
        }
    }
    Ok(())
}

/// Unselects a standalone component. Not selected: nothing to do.
pub fn remove(s: &mut Session, kind: Component, name: &str) -> Result<()> {
    names::validate(name)
        .map_err(|why| Error::config(format!("invalid {} name: {why}", kind.word())))?;
    if !is_known(s, kind, name) {
        return Err(unknown_for_removal(s, kind, name));
    }
    let m = s.manifest()?;
    if let Some(i) = find_standalone(m, kind, name) {
        let arr = standalone(m, kind)?;
        array::remove(arr, i);
    }
    Ok(())
}

/// `library|service mode NAME dev|prod`: on the standalone entry when there
/// is one, else in `[modes]`.
pub fn set_mode(s: &mut Session, kind: Component, name: &str, mode: Mode) -> Result<()> {
    require_component(s, kind, name)?;
    let m = s.manifest()?;
    match find_standalone(m, kind, name) {
        Some(i) => set_entry_mode(m, kind, i, name, mode)?,
        None => set_modes_key(m, name, mode)?,
    }
    Ok(())
}

fn set_modes_key(m: &mut Table, name: &str, mode: Mode) -> Result<()> {
    if mode == Mode::Prod {
        // The default: the key goes (and a `[modes]` left empty with it).
        return remove_modes_key(m, name);
    }
    let modes = section(m, "modes", "modes")?;
    modes.set_implicit(false);
    match modes.get_mut(name) {
        Some(Item::Value(v)) if v.as_str() == Some(mode.as_str()) => {}
        Some(Item::Value(v)) => {
            let decor = v.decor().clone();
            *v = Value::from(mode.as_str());
            *v.decor_mut() = decor;
        }
        _ => {
            modes.insert(name, toml_edit::value(mode.as_str()));
        }
    }
    Ok(())
}

/// `mode dev|prod`: every selected component, standalone or not.
pub fn set_all_modes(s: &mut Session, mode: Mode) -> Result<()> {
    let plan = crate::resolve(&s.loaded)?;
    let m = s.manifest()?;
    let existing: Vec<String> = m
        .get("modes")
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
        .unwrap_or_default();
    let mut others: Vec<String> = existing;
    for l in &plan.libraries {
        if find_standalone(m, Component::Library, &l.name).is_none() {
            others.push(l.name.clone());
        }
    }
    for sv in &plan.services {
        if find_standalone(m, Component::Service, &sv.name).is_none() {
            others.push(sv.name.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in others {
        if seen.insert(name.clone()) {
            set_modes_key(m, &name, mode)?;
        }
    }
    // Standalone entries last: `prod` drops their `mode` key once
    // `[modes]` no longer says otherwise.
    for kind in [Component::Library, Component::Service] {
        let n = m
            .get(kind.section())
            .and_then(|t| t.get("standalone"))
            .and_then(Item::as_array)
            .map_or(0, |a| a.len());
        for i in 0..n {
            let name = m
                .get(kind.section())
                .and_then(|t| t.get("standalone"))
                .and_then(Item::as_array)
                .and_then(|a| a.get(i))
                .and_then(value_name)
                .map(str::to_string);
            if let Some(name) = name {
                set_entry_mode(m, kind, i, &name, mode)?;
            }
        }
    }
    Ok(())
}

/// `[libraries].groups` / `[services].groups`, created as a dotted table.
fn groups_table(m: &mut Table, kind: Component) -> Result<&mut Table> {
    let sec = section(m, kind.section(), kind.section())?;
    if !sec.contains_key("groups") {
        let mut t = Table::new();
        t.set_dotted(true);
        sec.insert("groups", Item::Table(t));
    }
    sec.get_mut("groups")
        .and_then(Item::as_table_mut)
        .ok_or_else(|| {
            Error::config(format!(
                "`{}.groups` is written in a form `cargo hsm` cannot edit",
                kind.section()
            ))
            .with_help(format!(
            "write each group as `groups.<name> = {{ strategy = …, selection = … }}` under `[{}]`",
            kind.section()
        ))
        })
}

fn group_like<'t>(
    m: &'t mut Table,
    kind: Component,
    group: &str,
) -> Result<Option<&'t mut dyn TableLike>> {
    let present = m
        .get(kind.section())
        .and_then(|t| t.get("groups"))
        .and_then(|g| g.get(group))
        .is_some();
    if !present {
        return Ok(None);
    }
    let g = groups_table(m, kind)?;
    Ok(g.get_mut(group).and_then(Item::as_table_like_mut))
}

fn selection_names(t: &dyn TableLike) -> Vec<String> {
    match t.get("selection") {
        Some(Item::Value(Value::String(s))) => vec![s.value().clone()],
        Some(Item::Value(Value::Array(a))) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn set_selection_value(t: &mut dyn TableLike, value: Value) {
    match t.get_mut("selection") {
        Some(Item::Value(v)) => {
            let decor = v.decor().clone();
            *v = value;
            *v.decor_mut() = decor;
        }
        _ => {
            t.insert("selection", Item::Value(value));
        }
    }
}

/// `group add G [--option O]…`: selects a group. A group already selected
/// gets the options added as `add-option` would.
pub fn group_add(
    s: &mut Session,
    kind: Option<Component>,
    group: &str,
    options: &[String],
    profile: Option<&str>,
) -> Result<()> {
    let (kind, entry) = require_group(s, kind, group)?;
    for o in options {
        require_option(kind, group, &entry.value, o)?;
    }
    if profile.is_some() && kind == Component::Library {
        return Err(Error::config(format!(
            "`--profile` applies to service groups; `{group}` is a library group"
        )));
    }
    if entry.value.strategy == Strategy::OneOfN && options.len() > 1 {
        return Err(Error::config(format!(
            "the {} `{group}` is 1-of-N: select exactly one option, not {}",
            kind.group_word(),
            options.len()
        )));
    }
    let m = s.manifest()?;
    if group_like(m, kind, group)?.is_none() {
        if options.is_empty() {
            let list: Vec<&str> = entry
                .value
                .options
                .iter()
                .map(|o| o.name.as_str())
                .collect();
            return Err(Error::config(format!(
                "selecting the {} `{group}` needs an option; its options are: {}",
                kind.group_word(),
                list.join(", ")
            ))
            .with_help(format!(
                "`cargo hsm group add {group} --option {}`",
                list.first().copied().unwrap_or("<option>")
            )));
        }
        let mut t = InlineTable::new();
        t.insert("strategy", Value::from(entry.value.strategy.to_string()));
        let sel = match entry.value.strategy {
            Strategy::OneOfN => Value::from(options[0].as_str()),
            Strategy::MOfN => {
                let mut a = toml_edit::Array::new();
                for o in options {
                    if !a.iter().any(|v| v.as_str() == Some(o.as_str())) {
                        a.push(o.as_str());
                    }
                }
                Value::Array(a)
            }
        };
        t.insert("selection", sel);
        if let Some(p) = profile {
            t.insert("profile", Value::from(p));
        }
        t.fmt();
        let g = groups_table(m, kind)?;
        g.insert(group, toml_edit::value(t));
        return Ok(());
    }
    for o in options {
        add_option_in(m, kind, group, entry.value.strategy, o)?;
    }
    if let Some(p) = profile {
        let t = group_like(m, kind, group)?.expect("present");
        match t.get_mut("profile") {
            Some(Item::Value(v)) if v.as_str() == Some(p) => {}
            Some(Item::Value(v)) => {
                let decor = v.decor().clone();
                *v = Value::from(p);
                *v.decor_mut() = decor;
            }
            _ => {
                t.insert("profile", toml_edit::value(p));
            }
        }
    }
    Ok(())
}

/// `group remove G`: unselects a group. Not selected: nothing to do.
pub fn group_remove(s: &mut Session, kind: Option<Component>, group: &str) -> Result<()> {
    let (kind, _) = require_group(s, kind, group)?;
    let m = s.manifest()?;
    if group_like(m, kind, group)?.is_some() {
        let g = groups_table(m, kind)?;
        g.remove(group);
    }
    Ok(())
}

fn add_option_in(
    m: &mut Table,
    kind: Component,
    group: &str,
    strategy: Strategy,
    option: &str,
) -> Result<()> {
    let t = group_like(m, kind, group)?.expect("caller checked");
    let current = selection_names(t);
    match strategy {
        Strategy::OneOfN => {
            if current != [option] {
                set_selection_value(t, Value::from(option));
            }
        }
        Strategy::MOfN => {
            if current.iter().any(|c| c == option) {
                return Ok(());
            }
            match t.get_mut("selection") {
                Some(Item::Value(Value::Array(a))) => array::push(a, Value::from(option)),
                _ => {
                    let mut a = toml_edit::Array::new();
                    for c in &current {
                        a.push(c.as_str());
                    }
                    a.push(option);
                    set_selection_value(t, Value::Array(a));
                }
            }
        }
    }
    Ok(())
}

/// `group add-option G O`: 1-of-N replaces the selection, M-of-N appends
/// without duplicates. A group not yet selected is selected with `O`.
pub fn add_option(
    s: &mut Session,
    kind: Option<Component>,
    group: &str,
    option: &str,
) -> Result<()> {
    let (kind, entry) = require_group(s, kind, group)?;
    require_option(kind, group, &entry.value, option)?;
    if group_like(s.manifest()?, kind, group)?.is_none() {
        return group_add(s, Some(kind), group, &[option.to_string()], None);
    }
    add_option_in(s.manifest()?, kind, group, entry.value.strategy, option)
}

/// `group remove-option G O`. Refuses to leave a group with no selection.
pub fn remove_option(
    s: &mut Session,
    kind: Option<Component>,
    group: &str,
    option: &str,
) -> Result<()> {
    let (kind, entry) = require_group(s, kind, group)?;
    require_option(kind, group, &entry.value, option)?;
    let m = s.manifest()?;
    let Some(t) = group_like(m, kind, group)? else {
        return Ok(());
    };
    let current = selection_names(t);
    if !current.iter().any(|c| c == option) {
        return Ok(());
    }
    if current.len() == 1 {
        return Err(Error::config(format!(
            "removing `{option}` would leave the {} `{group}` ({}) with nothing selected",
            kind.group_word(),
            entry.value.strategy
        ))
        .with_help(match entry.value.strategy {
            Strategy::OneOfN => format!(
                "pick another option with `cargo hsm group add-option {group} <option>`, or unselect the group with `cargo hsm group remove {group}`"
            ),
            Strategy::MOfN => format!("unselect the group with `cargo hsm group remove {group}`"),
        }));
    }
    if let Some(Item::Value(Value::Array(a))) = t.get_mut("selection") {
        let found = a.iter().position(|v| v.as_str() == Some(option));
        if let Some(i) = found {
            array::remove(a, i);
        }
    }
    Ok(())
}
