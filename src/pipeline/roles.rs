//! Which role each of a stage's needs fills among the inputs its kind takes (`Needs`), checked
//! when the pipeline is loaded.

use std::collections::HashMap;

use crate::diag::Diagnostic;
use crate::pipeline::load::StageDef;
use crate::pipeline::schema::Needs;
use crate::pipeline::source::Source;

/// The role each of a stage's needs fills among its kind's `Needs`, checked: every need fills
/// one (a gathered `stage[*]` only one that takes many), every required role is filled, and
/// the kind accepts the combination.
pub(super) fn need_roles(
    def: &StageDef,
    defs: &[StageDef],
    index: &HashMap<&str, usize>,
    src: &Source,
) -> Result<Vec<Option<&'static str>>, Box<Diagnostic>> {
    let slots = match def.kind.needs() {
        Needs::Any => return Ok(vec![None; def.needs.len()]),
        Needs::Slots(slots) => slots,
    };
    let article = |k: &str| {
        if k.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        }
    };
    let wanted = || {
        if slots.is_empty() {
            return "takes no inputs".to_owned();
        }
        let each: Vec<String> = slots
            .iter()
            .map(|s| {
                let kinds: Vec<String> = s.kinds.iter().map(|k| format!("`{k}`")).collect();
                let what = if s.many {
                    format!("{} stages (plain or `[*]`)", kinds.join(" or "))
                } else {
                    format!("{} {} stage", article(s.kinds[0]), kinds.join(" or "))
                };
                if s.required {
                    what
                } else {
                    format!("optionally {what}")
                }
            })
            .collect();
        format!("needs {}", each.join(", "))
    };
    // Needs of the declared kinds first, in order; then each `command` need (whose outputs
    // are its own to shape, read and checked by the stage that takes them) fills the first
    // role still open.
    let mut roles = vec![None; def.needs.len()];
    let mut filled: Vec<(&'static str, &'static str)> = Vec::new();
    let upstream = |n: &crate::pipeline::model::Need| &defs[index[n.stage.as_str()]].kind;
    let typed = def
        .needs
        .iter()
        .enumerate()
        .filter(|(_, n)| upstream(n).name() != "command");
    let commands = def
        .needs
        .iter()
        .enumerate()
        .filter(|(_, n)| upstream(n).name() == "command");
    for (k, n) in typed.chain(commands) {
        let up = upstream(n);
        let slot = slots.iter().find(|s| {
            (s.kinds.contains(&up.name()) || up.name() == "command")
                && (s.many || !filled.iter().any(|(r, _)| *r == s.role))
                && (s.many || !n.gather)
        });
        let Some(slot) = slot else {
            let why = if n.gather && slots.iter().any(|s| s.kinds.contains(&up.name())) {
                format!("takes one `{up}` instance, not a gathered `{}[*]`", n.stage)
            } else if slots.iter().any(|s| s.kinds.contains(&up.name())) {
                format!("takes one `{up}` stage, not two")
            } else {
                format!("takes no `{up}` input")
            };
            return Err(Box::new(
                src.at_value(
                    &format!("{}.needs.{k}", def.path),
                    format!("a `{}` stage {why}", def.kind),
                )
                .with_hint(format!("a `{}` stage {}", def.kind, wanted())),
            ));
        };
        roles[k] = Some(slot.role);
        filled.push((slot.role, up.name()));
    }
    let at = if def.needs.is_empty() {
        def.path.clone()
    } else {
        format!("{}.needs", def.path)
    };
    if let Some(missing) = slots
        .iter()
        .find(|s| s.required && !filled.iter().any(|(r, _)| *r == s.role))
    {
        let kinds: Vec<String> = missing.kinds.iter().map(|k| format!("`{k}`")).collect();
        return Err(Box::new(
            src.at_key(
                &at,
                format!(
                    "a `{}` stage needs {} {} stage among its `needs`",
                    def.kind,
                    article(missing.kinds[0]),
                    kinds.join(" or ")
                ),
            )
            .with_hint(format!("a `{}` stage {}", def.kind, wanted())),
        ));
    }
    def.kind
        .check_needs(&filled)
        .map_err(|m| Box::new(src.at_key(&at, m)))?;
    Ok(roles)
}
