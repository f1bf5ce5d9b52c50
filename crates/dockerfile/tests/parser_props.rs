//! Property-style robustness tests without a property-testing crate: a tiny
//! deterministic xorshift generator feeds the parser hostile input. The parser
//! must not panic, must keep its spans sane, and must stay linear.

use dockerfile::parser::{InstructionKind, Parsed, limits, parse};

/// xorshift64*: deterministic, good enough to shake a parser.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
    "run",
    "OnBuild",
    "BOGUS",
    "# syntax=x",
    "# escape=`",
    "# check=skip=all",
    "#",
];

const TOKENS: &[&str] = &[
    "alpine",
    "AS",
    "as",
    "x",
    "--from=a",
    "--mount=type=cache,target=/x",
    "--mount=type=bogus",
    "--mount=",
    "--chmod=755",
    "--chmod=9999",
    "--chmod=u+x",
    "--link",
    "--link=maybe",
    "--network=none",
    "--security=x",
    "--interval=30s",
    "--retries=-1",
    "--",
    "-",
    "\\",
    "`",
    "\\\n",
    "`\n",
    "\n",
    "\r\n",
    "\t",
    " ",
    "<<EOF",
    "<<-EOF",
    "<<'EOF'",
    "<<\"E O\"",
    "3<<EOF",
    "EOF",
    "\tEOF",
    "[",
    "]",
    "[\"a\",",
    "\"",
    "'",
    "${a:-${b}}",
    "$x",
    "=",
    "a=b",
    "\"k\"=\"v\"",
    "NONE",
    "CMD",
    "é",
    "😀",
    "\u{feff}",
    "\u{0}",
    "\u{85}",
    "\u{a0}",
    "{",
    "}",
    ",",
    ":",
    "#",
];

fn check_invariants(src: &str, p: &Parsed) {
    let lines = u32::try_from(src.lines().count() + 2).unwrap_or(u32::MAX);
    for d in &p.diagnostics {
        assert!(d.span.start.line >= 1 && d.span.start.column >= 1, "{d:?}");
        assert!(d.span.start <= d.span.end, "{d:?}");
        assert!(d.span.end.line <= lines, "{d:?} beyond {lines} lines");
        assert!(!d.message.is_empty() && !d.code.is_empty());
        let _ = d.render("Dockerfile", src);
    }
    for i in &p.dockerfile.instructions {
        assert!(
            i.span.start.line >= 1 && i.span.start <= i.span.end,
            "{i:?}"
        );
    }
    let _ = p.dump();
    let _ = p.dockerfile.stages();
}

fn random_bytes(rng: &mut Rng) -> String {
    let n = rng.below(400);
    let bytes: Vec<u8> = (0..n).map(|_| (rng.next() & 0xff) as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn soup(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(40) {
        s.push_str(rng.pick(KEYWORDS));
        for _ in 0..rng.below(8) {
            s.push(' ');
            s.push_str(rng.pick(TOKENS));
        }
        s.push_str(if rng.below(4) == 0 { "\r\n" } else { "\n" });
    }
    s
}

fn nested_expansion(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(3000);
    let mut w = String::new();
    for i in 0..depth {
        w.push_str(&format!("${{v{i}:-"));
    }
    w.push('x');
    w.push_str(&"}".repeat(depth));
    format!("FROM a\nENV A={w}\nRUN echo {w}\nCOPY --chown={w} {w} /d\n")
}

fn unterminated(rng: &mut Rng) -> String {
    let tail = match rng.below(5) {
        0 => "RUN <<EOF\necho hi\n".to_owned(),
        1 => "RUN [\"a\", \"b\n".to_owned(),
        2 => format!("RUN {}", "[".repeat(1 + rng.below(50_000))),
        3 => "COPY <<A <<B /x\na\nA\n".to_owned(),
        _ => "RUN echo \\\n\\\n".to_owned(),
    };
    format!("FROM a\n{tail}")
}

#[test]
fn random_inputs_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..2000 {
        let src = match i % 4 {
            0 => random_bytes(&mut rng),
            1 => soup(&mut rng),
            2 => nested_expansion(&mut rng),
            _ => unterminated(&mut rng),
        };
        let p = parse(&src);
        check_invariants(&src, &p);
    }
}

#[test]
fn hundred_thousand_lines_hit_the_instruction_cap() {
    let mut src = String::from("FROM a\n");
    for i in 0..limits::MAX_INSTRUCTIONS {
        src.push_str(&format!("RUN echo {i}\n"));
    }
    let p = parse(&src);
    assert_eq!(p.dockerfile.instructions.len(), limits::MAX_INSTRUCTIONS);
    let codes: Vec<_> = p.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["too-many-instructions"]);
}

#[test]
fn ten_megabyte_file_parses() {
    let mut src = String::from("# syntax=docker/dockerfile:1\nFROM alpine AS build\n");
    let body = "x".repeat(90);
    let mut n = 0;
    while src.len() < 10 << 20 {
        match n % 3 {
            0 => {
                src.push_str("RUN echo start \\\n");
                for _ in 0..100 {
                    src.push_str(&format!("  {body} \\\n"));
                }
                src.push_str("  end\n");
            }
            1 => {
                src.push_str("COPY --chmod=644 <<EOF /etc/f\n");
                for _ in 0..100 {
                    src.push_str(&format!("{body}\n"));
                }
                src.push_str("EOF\n");
            }
            _ => src.push_str("RUN --mount=type=cache,target=/c [\"make\", \"-j\"]\n"),
        }
        n += 1;
    }
    assert!(src.len() >= 10 << 20);
    let p = parse(&src);
    assert!(p.diagnostics.is_empty(), "{:?}", &p.diagnostics[..1]);
    assert_eq!(p.dockerfile.instructions.len(), n + 1);
    assert_eq!(p.dockerfile.stages().len(), 1);
}

#[test]
fn source_larger_than_the_cap_is_truncated_with_an_error() {
    let src = format!(
        "FROM a\n{}",
        "# filler comment line\n".repeat((limits::MAX_SOURCE_BYTES / 22) + 10)
    );
    let p = parse(&src);
    assert_eq!(p.diagnostics[0].code, "source-too-large");
    assert_eq!(p.dockerfile.instructions.len(), 1);
}

/// Work grows linearly: 8x the input gives 8x the instructions, heredoc bytes
/// and diagnostics (no wall-clock assertions).
#[test]
fn work_is_linear_in_input() {
    fn unit(i: usize) -> String {
        format!(
            "RUN --mount=type=cache,target=/c{i} echo {i} \\\n  && true\nCOPY --bogus <<EOF /f{i}\nline {i}\nEOF\nLABEL k{i}=v\n"
        )
    }
    let measure = |n: usize| {
        let src: String = std::iter::once("FROM a\n".to_owned())
            .chain((0..n).map(unit))
            .collect();
        let p = parse(&src);
        let heredoc_bytes: usize = p
            .dockerfile
            .instructions
            .iter()
            .map(|i| i.heredocs.iter().map(|h| h.content.len()).sum::<usize>())
            .sum();
        let mounts: usize = p
            .dockerfile
            .instructions
            .iter()
            .map(|i| match &i.kind {
                InstructionKind::Run(r) => r.mounts.len(),
                _ => 0,
            })
            .sum();
        (
            p.dockerfile.instructions.len() - 1,
            p.diagnostics.len(),
            mounts,
            heredoc_bytes,
        )
    };
    // 8n units stay under the diagnostics cap.
    let n = 100;
    let small = measure(n);
    let big = measure(8 * n);
    assert_eq!(small.0 * 8, big.0);
    assert_eq!(small.1 * 8, big.1);
    assert_eq!(small.2 * 8, big.2);
    assert!(big.3 >= small.3 * 8 && big.3 <= small.3 * 9);
}

#[test]
fn pathological_lines_stay_bounded() {
    let cases = [
        format!("FROM a\nRUN {}\n", "<<E ".repeat(10_000)),
        format!(
            "FROM a\nRUN {} x\n",
            "--mount=type=tmpfs,target=/t ".repeat(2_000)
        ),
        format!("FROM a\n{}", "RUN x \\\n".repeat(200_000)),
        format!("FROM a\n{}", "\\\n".repeat(200_000)),
        format!("FROM a\nCMD [{}]\n", "{\"a\":[".repeat(20_000)),
        format!("FROM a\nRUN {}\n", "\"".repeat(60_000)),
        format!("FROM a\nENV {}\n", "a=\"b ".repeat(10_000)),
    ];
    for src in &cases {
        let p = parse(src);
        check_invariants(src, &p);
    }
}
