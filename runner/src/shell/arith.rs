//! `$((...))`: the text is expanded (`$x`, `$(..)`), parsed by
//! brush-parser's arithmetic parser, and evaluated here in 64-bit signed
//! integers; bare names read and assign shell variables.

use brush_parser::ast::{
    ArithmeticExpr as E, ArithmeticTarget, BinaryOperator as B, UnaryAssignmentOperator as UA,
    UnaryOperator as U,
};

use super::ast::Pos;
use super::interp::{Flow, Shell};

impl Shell<'_, '_> {
    /// Evaluates an arithmetic expression.
    pub(super) fn arith(&mut self, text: &str, pos: Pos) -> Result<i64, Flow> {
        let word = super::parse::word_text(text, pos).map_err(|e| self.fatal(pos, &e.message))?;
        let text = self.expand_string(&word)?;
        if text.trim().is_empty() {
            return Ok(0);
        }
        let expr = brush_parser::arithmetic::parse(&text)
            .map_err(|_| self.fatal(pos, &format!("arithmetic syntax error: {text}")))?;
        self.eval(&expr, pos)
    }

    fn name_of(&self, t: &ArithmeticTarget, pos: Pos) -> Result<String, Flow> {
        match t {
            ArithmeticTarget::Variable(n) => Ok(n.clone()),
            ArithmeticTarget::ArrayElement(..) => Err(self.fatal(pos, "arrays are not supported")),
        }
    }

    fn read_var(&mut self, name: &str, pos: Pos) -> Result<i64, Flow> {
        let v = self.var(name).unwrap_or_default();
        let v = v.trim();
        if v.is_empty() {
            return Ok(0);
        }
        number(v).map_or_else(|| self.arith(v, pos), Ok)
    }

    fn eval(&mut self, e: &E, pos: Pos) -> Result<i64, Flow> {
        Ok(match e {
            E::Literal(n) => *n,
            E::Reference(t) => {
                let n = self.name_of(t, pos)?;
                self.read_var(&n, pos)?
            }
            E::UnaryOp(op, x) => {
                let x = self.eval(x, pos)?;
                match op {
                    U::UnaryPlus => x,
                    U::UnaryMinus => x.wrapping_neg(),
                    U::BitwiseNot => !x,
                    U::LogicalNot => i64::from(x == 0),
                }
            }
            E::BinaryOp(B::LogicalAnd, a, b) => {
                i64::from(self.eval(a, pos)? != 0 && self.eval(b, pos)? != 0)
            }
            E::BinaryOp(B::LogicalOr, a, b) => {
                i64::from(self.eval(a, pos)? != 0 || self.eval(b, pos)? != 0)
            }
            E::BinaryOp(op, a, b) => {
                let a = self.eval(a, pos)?;
                let b = self.eval(b, pos)?;
                self.arith_binary(*op, a, b, pos)?
            }
            E::Conditional(c, a, b) => {
                if self.eval(c, pos)? != 0 {
                    self.eval(a, pos)?
                } else {
                    self.eval(b, pos)?
                }
            }
            E::Assignment(t, x) => {
                let n = self.name_of(t, pos)?;
                let v = self.eval(x, pos)?;
                self.set_var(&n, v.to_string());
                v
            }
            E::BinaryAssignment(op, t, x) => {
                let n = self.name_of(t, pos)?;
                let old = self.read_var(&n, pos)?;
                let x = self.eval(x, pos)?;
                let v = self.arith_binary(*op, old, x, pos)?;
                self.set_var(&n, v.to_string());
                v
            }
            E::UnaryAssignment(op, t) => {
                let n = self.name_of(t, pos)?;
                let old = self.read_var(&n, pos)?;
                let (new, result) = match op {
                    UA::PrefixIncrement => (old.wrapping_add(1), old.wrapping_add(1)),
                    UA::PrefixDecrement => (old.wrapping_sub(1), old.wrapping_sub(1)),
                    UA::PostfixIncrement => (old.wrapping_add(1), old),
                    UA::PostfixDecrement => (old.wrapping_sub(1), old),
                };
                self.set_var(&n, new.to_string());
                result
            }
        })
    }

    fn arith_binary(&self, op: B, a: i64, b: i64, pos: Pos) -> Result<i64, Flow> {
        Ok(match op {
            B::Power => {
                if b < 0 {
                    return Err(self.fatal(pos, "exponent less than 0"));
                }
                a.wrapping_pow(b.min(u32::MAX as i64) as u32)
            }
            B::Multiply => a.wrapping_mul(b),
            B::Divide | B::Modulo if b == 0 => return Err(self.fatal(pos, "division by zero")),
            B::Divide => a.wrapping_div(b),
            B::Modulo => a.wrapping_rem(b),
            B::Comma => b,
            B::Add => a.wrapping_add(b),
            B::Subtract => a.wrapping_sub(b),
            B::ShiftLeft => a.wrapping_shl(b as u32),
            B::ShiftRight => a.wrapping_shr(b as u32),
            B::LessThan => i64::from(a < b),
            B::LessThanOrEqualTo => i64::from(a <= b),
            B::GreaterThan => i64::from(a > b),
            B::GreaterThanOrEqualTo => i64::from(a >= b),
            B::Equals => i64::from(a == b),
            B::NotEquals => i64::from(a != b),
            B::BitwiseAnd => a & b,
            B::BitwiseXor => a ^ b,
            B::BitwiseOr => a | b,
            B::LogicalAnd => i64::from(a != 0 && b != 0),
            B::LogicalOr => i64::from(a != 0 || b != 0),
        })
    }
}

/// A decimal, `0x` hex or `0` octal integer.
pub(super) fn number(s: &str) -> Option<i64> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if s.len() > 1 && s.starts_with('0') {
        i64::from_str_radix(&s[1..], 8).ok()?
    } else {
        s.parse().ok()?
    };
    Some(if neg { -v } else { v })
}
