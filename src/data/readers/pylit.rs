//! A parser for Python literals (the lines of Amazon 2014 `meta_*.json.gz` are dict reprs, not
//! JSON): dicts, lists, tuples, sets, strings, numbers, True/False/None. It parses; it never
//! evaluates.

use serde_json::{Map, Value as Json};

pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = P {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "unexpected `{}` at column {}",
            p.s[p.i] as char,
            p.i + 1
        ));
    }
    Ok(v)
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at column {}", self.i + 1))
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 64 {
            return self.err("nested too deeply");
        }
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            return self.err("unexpected end of line");
        };
        match c {
            b'{' => self.dict(depth),
            b'[' => self.seq(b']', depth),
            b'(' => self.seq(b')', depth),
            b'\'' | b'"' => self.string().map(Json::String),
            b'u' | b'b' | b'r' if matches!(self.s.get(self.i + 1), Some(b'\'' | b'"')) => {
                self.i += 1;
                self.string().map(Json::String)
            }
            b'-' | b'+' | b'.' | b'0'..=b'9' => self.number(),
            _ => {
                for (word, v) in [
                    ("True", Json::Bool(true)),
                    ("False", Json::Bool(false)),
                    ("None", Json::Null),
                ] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(v);
                    }
                }
                self.err(&format!("unexpected `{}`", c as char))
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Json, String> {
        self.i += 1;
        let mut m = Map::new();
        let mut is_set = false;
        let mut set_items = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&b'}') {
                self.i += 1;
                return Ok(if is_set {
                    Json::Array(set_items)
                } else {
                    Json::Object(m)
                });
            }
            let k = self.value(depth + 1)?;
            self.ws();
            match self.s.get(self.i) {
                Some(b':') if !is_set => {
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    let key = match k {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    m.insert(key, v);
                }
                _ if m.is_empty() => {
                    is_set = true;
                    set_items.push(k);
                }
                _ => return self.err("expected `:`"),
            }
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return self.err("expected `,` or `}`"),
            }
        }
    }

    fn seq(&mut self, close: u8, depth: usize) -> Result<Json, String> {
        self.i += 1;
        let mut v = Vec::new();
        loop {
            self.ws();
            if self.s.get(self.i) == Some(&close) {
                self.i += 1;
                return Ok(Json::Array(v));
            }
            v.push(self.value(depth + 1)?);
            self.ws();
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(&c) if c == close => {}
                _ => return self.err(&format!("expected `,` or `{}`", close as char)),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let q = self.s[self.i];
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            if c == q {
                return String::from_utf8(out).map_err(|_| "string is not valid UTF-8".to_owned());
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(&e) = self.s.get(self.i) else {
                return self.err("unterminated escape");
            };
            self.i += 1;
            let simple = match e {
                b'n' => Some('\n'),
                b't' => Some('\t'),
                b'r' => Some('\r'),
                b'0' => Some('\0'),
                b'\\' => Some('\\'),
                b'\'' => Some('\''),
                b'"' => Some('"'),
                b'a' => Some('\x07'),
                b'b' => Some('\x08'),
                b'f' => Some('\x0c'),
                b'v' => Some('\x0b'),
                b'\n' => None,
                _ => None,
            };
            let ch = match (e, simple) {
                (_, Some(ch)) => ch,
                (b'\n', None) => continue,
                (b'x', _) => self.hex(2)?,
                (b'u', _) => self.hex(4)?,
                (b'U', _) => self.hex(8)?,
                _ => {
                    out.push(b'\\');
                    out.push(e);
                    continue;
                }
            };
            let mut b = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
        }
    }

    fn hex(&mut self, n: usize) -> Result<char, String> {
        let digits = self.s.get(self.i..self.i + n).ok_or("truncated escape")?;
        let code = u32::from_str_radix(std::str::from_utf8(digits).map_err(|_| "bad escape")?, 16)
            .map_err(|_| "bad escape".to_owned())?;
        self.i += n;
        // A lone surrogate (from a \u escape) becomes U+FFFD.
        Ok(char::from_u32(code).unwrap_or('\u{fffd}'))
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E' | b'_'
            )
        {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i])
            .map_err(|_| "bad number")?
            .replace('_', "");
        if let Ok(n) = t.parse::<i64>() {
            return Ok(Json::from(n));
        }
        match t.parse::<f64>() {
            Ok(f) => Ok(serde_json::Number::from_f64(f)
                .map(Json::Number)
                .unwrap_or(Json::Null)),
            Err(_) => Err(format!("bad number `{t}` at column {}", start + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_amazon_meta_lines() {
        let line = r#"{'asin': '0205616461', 'title': "Bonne Bell's \"Lip\" Smacker\u00e9", 'salesRank': {'Beauty': 10486}, 'categories': [['Beauty', 'Skin Care']], 'price': 12.5, 'related': {'also_bought': ('a', 'b')}, 'x': None, 'y': True}"#;
        let v = parse(line).unwrap();
        assert_eq!(v["asin"], "0205616461");
        assert_eq!(v["title"], "Bonne Bell's \"Lip\" Smackeré");
        assert_eq!(v["categories"], json!([["Beauty", "Skin Care"]]));
        assert_eq!(v["price"], json!(12.5));
        assert_eq!(v["related"]["also_bought"], json!(["a", "b"]));
        assert_eq!(v["x"], Json::Null);
        assert_eq!(v["y"], json!(true));
    }

    #[test]
    fn rejects_code_and_garbage() {
        assert!(parse("{'a': __import__('os')}").is_err());
        assert!(parse("{'a': 'unterminated}")
            .unwrap_err()
            .contains("unterminated"));
        assert!(parse("{'a' 1}").is_err());
        assert!(parse("{'a': 1} trailing").is_err());
    }
}
