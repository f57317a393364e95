//! Checks that an image can be restored on this machine: CPU xstate features, vdso.

use cairn_image::ProcessImage;
use cairn_sys::procfs;
use cairn_sys::vdso::vdso_info;
use cairn_sys::{Error, Result};

/// XCR0 of this CPU: the xstate features the OS enabled.
pub fn host_xcr0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: xgetbv(0) only reads XCR0; x86_64 Linux enables OSXSAVE on every CPU with XSAVE,
    // which the kernel's NT_X86_XSTATE regset (used by capture) already required.
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack));
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The xstate components an xsave image uses (XSTATE_BV of its header).
pub fn xstate_features(xstate: &[u8]) -> u64 {
    if xstate.len() < 520 {
        return 0;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&xstate[512..520]);
    u64::from_le_bytes(a)
}

/// Refuse images this CPU or kernel cannot run.
pub fn check(p: &ProcessImage) -> Result<()> {
    let xcr0 = host_xcr0();
    for t in &p.threads {
        let used = xstate_features(&t.xstate);
        if used & !xcr0 != 0 {
            return Err(Error::Incompatible(format!(
                "thread {} uses CPU state components {:#x} that this CPU/kernel lacks (XCR0 {xcr0:#x})",
                t.tid,
                used & !xcr0
            )));
        }
    }
    if let Some(v) = &p.vdso {
        let me = std::process::id() as i32;
        let maps = procfs::read_maps(me)?;
        let host = vdso_info(me, &maps)?
            .ok_or_else(|| Error::Incompatible("this process has no vdso".into()))?;
        if host.hash != v.hash || host.block_len != v.block_len || host.vdso_len != v.vdso_len {
            return Err(Error::Incompatible(
                "the running kernel's vdso differs from the one in the image (different kernel)"
                    .into(),
            ));
        }
    }
    Ok(())
}
