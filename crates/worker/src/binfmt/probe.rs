//! Whether a platform's binaries really run here: a tiny static program of that
//! architecture, executed from an empty root so that only an emulator the kernel opened
//! at registration (binfmt_misc's F flag) can run it.
//!
//! The programs are a few instructions that call `exit(PROBE_EXIT)`, wrapped in the
//! smallest ELF file the kernel and QEMU load: one header, one `PT_LOAD` segment. They
//! are written here, byte by byte, instead of shipped as binaries: no cross toolchain is
//! needed, and each is checked by running it under its QEMU (tests/binfmt.rs).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The status each probe exits with: not 0, so that nothing else's success passes.
pub const PROBE_EXIT: i32 = 42;

/// How long a probe may run: an emulator starts in tens of milliseconds.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the segment is loaded: above `vm.mmap_min_addr`, aligned for 64 KiB pages.
const BASE: u64 = 0x1000_0000;

/// The machine code of `exit(PROBE_EXIT)` for QEMU's architecture name, as 32-bit
/// words (RISC machines) or bytes, and the ELF `e_flags` the loaders expect.
fn code(qemu: &str, big_endian: bool) -> Option<(Vec<u8>, u32)> {
    let words = |ws: &[u32]| -> Vec<u8> {
        ws.iter()
            .flat_map(|w| {
                if big_endian {
                    w.to_be_bytes()
                } else {
                    w.to_le_bytes()
                }
            })
            .collect()
    };
    let exit = PROBE_EXIT as u32;
    Some(match qemu {
        // mov edi, 42; mov eax, 60 (exit); syscall
        "x86_64" => (
            [0xbf, exit as u8, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05].to_vec(),
            0,
        ),
        // mov ebx, 42; mov eax, 1 (exit); int 0x80
        "i386" => (
            [0xbb, exit as u8, 0, 0, 0, 0xb8, 1, 0, 0, 0, 0xcd, 0x80].to_vec(),
            0,
        ),
        // movz x0, #42; movz x8, #93 (exit); svc #0
        "aarch64" => (
            words(&[
                0xd280_0000 | (exit << 5),
                0xd280_0008 | (93 << 5),
                0xd400_0001,
            ]),
            0,
        ),
        // mov r0, #42; mov r7, #1 (exit); svc #0 — EABI version 5
        "arm" => (
            words(&[0xe3a0_0000 | exit, 0xe3a0_7001, 0xef00_0000]),
            0x0500_0000,
        ),
        // li r3, 42; li r0, 1 (exit); sc — ELFv2, whose entry is code, not a descriptor
        "ppc64le" | "ppc64" => (words(&[0x3860_0000 | exit, 0x3800_0001, 0x4400_0002]), 2),
        // lghi %r2, 42; svc 1 (exit)
        "s390x" => ([0xa7, 0x29, 0, exit as u8, 0x0a, 0x01].to_vec(), 0),
        // addi a0, zero, 42; addi a7, zero, 93 (exit); ecall
        "riscv64" => (words(&[(exit << 20) | 0x513, 0x05d0_0893, 0x0000_0073]), 0),
        // addi.w $a0, $zero, 42; addi.w $a7, $zero, 93 (exit); syscall 0 — LP64D
        "loongarch64" => (
            words(&[
                0x0280_0004 | (exit << 10),
                0x0280_000b | (93 << 10),
                0x002b_0000,
            ]),
            0x43,
        ),
        // daddiu $a0, $zero, 42; daddiu $v0, $zero, 5058 (n64 exit); syscall
        "mips64el" => (
            words(&[0x6404_0000 | exit, 0x6402_0000 | 5058, 0x0000_000c]),
            0x8000_0000,
        ),
        _ => return None,
    })
}

/// A static executable of this architecture that exits with [`PROBE_EXIT`].
pub(super) fn program(
    qemu: &str,
    class64: bool,
    big_endian: bool,
    machine: u16,
) -> Option<Vec<u8>> {
    let (code, flags) = code(qemu, big_endian)?;
    let (ehsize, phsize) = if class64 { (64u64, 56u64) } else { (52, 32) };
    let entry = BASE + ehsize + phsize;
    let size = ehsize + phsize + code.len() as u64;
    let mut out = Vec::with_capacity(size as usize);
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u64b = |v: u64| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    // A word of the file's class: 8 bytes in ELF64, 4 in ELF32.
    let word = |out: &mut Vec<u8>, v: u64| {
        if class64 {
            out.extend(u64b(v))
        } else {
            out.extend(u32b(v as u32))
        }
    };
    // e_ident: magic, class, data, version 1, System V ABI, padding.
    out.extend([0x7f, b'E', b'L', b'F']);
    out.push(if class64 { 2 } else { 1 });
    out.push(if big_endian { 2 } else { 1 });
    out.extend([1, 0]);
    out.extend([0; 8]);
    out.extend(u16b(2)); // ET_EXEC
    out.extend(u16b(machine));
    out.extend(u32b(1)); // EV_CURRENT
    word(&mut out, entry);
    word(&mut out, ehsize); // e_phoff
    word(&mut out, 0); // e_shoff
    out.extend(u32b(flags));
    out.extend(u16b(ehsize as u16));
    out.extend(u16b(phsize as u16));
    out.extend(u16b(1)); // e_phnum
    out.extend(u16b(0)); // e_shentsize
    out.extend(u16b(0)); // e_shnum
    out.extend(u16b(0)); // e_shstrndx
    // The one program header: the whole file, readable and executable, at BASE.
    let (pt_load, r_x) = (1u32, 5u32);
    out.extend(u32b(pt_load));
    if class64 {
        out.extend(u32b(r_x));
    }
    word(&mut out, 0); // p_offset
    word(&mut out, BASE); // p_vaddr
    word(&mut out, BASE); // p_paddr
    word(&mut out, size); // p_filesz
    word(&mut out, size); // p_memsz
    if !class64 {
        out.extend(u32b(r_x));
    }
    word(&mut out, 0x10000); // p_align
    out.extend(code);
    debug_assert_eq!(out.len() as u64, size);
    Some(out)
}

/// Run `program` and say why it did not exit with [`PROBE_EXIT`]. As root it runs in
/// an empty root directory (chroot), as a step's process does in its container: an
/// emulator is then reachable only when the kernel opened it at registration. (Without
/// root it runs where it was written, which proves less.)
pub(super) fn run(program: &[u8]) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("manifold-binfmt-probe")
        .tempdir()
        .map_err(|e| format!("cannot make a directory for the test program: {e}"))?;
    let path = dir.path().join("probe");
    std::fs::write(&path, program)
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("cannot write the test program {}: {e}", path.display()))?;
    // chroot(8) enters the empty root and execs the program: its own status is 126
    // or 127, with the kernel's reason on stderr, when the program cannot start.
    let in_root = rustix::process::geteuid().is_root();
    let mut cmd = if in_root {
        let mut cmd = Command::new("chroot");
        cmd.arg(dir.path()).arg("/probe");
        cmd
    } else {
        Command::new(&path)
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| describe_spawn(&e, in_root))?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the test program did not exit within {}s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(format!("cannot wait for the test program: {e}")),
        }
    };
    let mut said = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = (&mut err).take(4096).read_to_string(&mut said);
    }
    let said = said.trim().trim_start_matches("chroot: ");
    match status.code() {
        Some(PROBE_EXIT) => Ok(()),
        Some(126 | 127) if !said.is_empty() => Err(format!(
            "{said}{}",
            if said.contains("No such file") {
                " (its interpreter is not found in the container's root)"
            } else {
                ""
            }
        )),
        Some(code) => Err(format!(
            "the test program exited with status {code}, not {PROBE_EXIT}"
        )),
        None => Err(format!("the test program was killed ({status})")),
    }
}

fn describe_spawn(e: &std::io::Error, in_root: bool) -> String {
    if in_root {
        format!("cannot run chroot(8) to start the test program: {e}")
    } else {
        format!("the test program cannot start: {e}")
    }
}
