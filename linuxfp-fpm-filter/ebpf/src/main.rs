// SPDX-License-Identifier: MIT OR Apache-2.0
//! Placeholder: the filter stage is not written yet (no programs).
#![no_std]
#![no_main]

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
