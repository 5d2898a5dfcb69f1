//! The part of apiserver's CEL type checking that matters most when a CRD is created:
//! a rule selecting a field its schema does not declare (`self.replcas`) is refused with
//! `undefined field`, instead of failing on every object later. Only selections rooted
//! at `self`/`oldSelf` through declared objects and maps are followed; anything the
//! check cannot type (comprehension variables, indexing, preserved unknown fields) is
//! left to evaluation.

use kube_cel::cel::{
    IdedExpr,
    common::ast::{EntryExpr, Expr},
};

use crate::{celvalue::escape, node::Node};

/// The type the checker knows for a sub-expression.
enum Known<'a> {
    /// A value of this schema node; `true` for resource roots (apiVersion/kind/metadata).
    Schema(&'a Node, bool),
    /// Anything else.
    Unknown,
}

/// The first field selected on a declared object that its schema does not declare.
pub(crate) fn undefined_field(
    expr: &IdedExpr,
    node: &Node,
    is_resource: bool,
    old_self_is_optional: bool,
) -> Option<String> {
    let mut found = None;
    visit(expr, &mut |e| {
        if found.is_none()
            && let Expr::Select(select) = &e.expr
            && let Known::Schema(parent, parent_is_resource) =
                resolve(&select.operand, node, is_resource, old_self_is_optional)
            && !selects_declared(parent, parent_is_resource, &select.field)
        {
            found = Some(select.field.clone());
        }
    });
    found
}

fn resolve<'a>(
    expr: &IdedExpr,
    node: &'a Node,
    is_resource: bool,
    old_self_is_optional: bool,
) -> Known<'a> {
    match &expr.expr {
        Expr::Ident(name) if name == "self" => Known::Schema(node, is_resource),
        Expr::Ident(name) if name == "oldSelf" && !old_self_is_optional => {
            Known::Schema(node, is_resource)
        }
        Expr::Select(select) => {
            match resolve(&select.operand, node, is_resource, old_self_is_optional) {
                Known::Schema(parent, _) => match parent.additional_schema() {
                    Some(values) => Known::Schema(values, values.embedded_resource),
                    None => parent
                        .properties
                        .iter()
                        .find(|(name, _)| escape(name).as_deref() == Some(select.field.as_str()))
                        .map_or(Known::Unknown, |(_, child)| {
                            Known::Schema(child, child.embedded_resource)
                        }),
                },
                Known::Unknown => Known::Unknown,
            }
        }
        _ => Known::Unknown,
    }
}

fn selects_declared(parent: &Node, is_resource: bool, field: &str) -> bool {
    if parent.properties.is_empty()
        || parent.preserve_unknown
        || parent.additional_schema().is_some()
    {
        return true;
    }
    if is_resource && matches!(field, "apiVersion" | "kind" | "metadata") {
        return true;
    }
    parent
        .properties
        .keys()
        .any(|name| escape(name).as_deref() == Some(field))
}

fn visit(expr: &IdedExpr, f: &mut impl FnMut(&IdedExpr)) {
    f(expr);
    match &expr.expr {
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                visit(target, f);
            }
            call.args.iter().for_each(|a| visit(a, f));
        }
        Expr::Comprehension(c) => {
            for part in [
                &c.iter_range,
                &c.accu_init,
                &c.loop_cond,
                &c.loop_step,
                &c.result,
            ] {
                visit(part, f);
            }
        }
        Expr::List(list) => list.elements.iter().for_each(|e| visit(e, f)),
        Expr::Map(map) => {
            for entry in &map.entries {
                if let EntryExpr::MapEntry(e) = &entry.expr {
                    visit(&e.key, f);
                    visit(&e.value, f);
                }
            }
        }
        Expr::Struct(s) => {
            for entry in &s.entries {
                if let EntryExpr::StructField(field) = &entry.expr {
                    visit(&field.value, f);
                }
            }
        }
        Expr::Select(select) => visit(&select.operand, f),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}
