// SPDX-License-Identifier: MIT OR Apache-2.0
//! Byte-level map writes, for plans whose map contents are plain bytes.
//! aya's typed maps need the key and value types at compile time; the
//! deployer works for any FPM, so it writes the bytes the FPM planned.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::MapData;

use super::DeployError;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// A shared map opened for byte-level writes, with its sizes checked once.
#[derive(Debug)]
pub(crate) struct RawMap {
    name: String,
    data: MapData,
    key_size: usize,
    value_size: usize,
    /// Array maps cannot delete: a removed entry is written as zeroes.
    array: bool,
}

impl RawMap {
    pub(crate) fn new(name: &str, data: MapData) -> Result<Self, DeployError> {
        let info = data.info().map_err(|source| DeployError::Map {
            map: name.to_string(),
            source: Box::new(source),
        })?;
        let array = matches!(
            info.map_type(),
            Ok(aya::maps::MapType::Array | aya::maps::MapType::PerCpuArray)
        );
        Ok(RawMap {
            name: name.to_string(),
            data,
            key_size: info.key_size() as usize,
            value_size: info.value_size() as usize,
            array,
        })
    }

    fn check(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), DeployError> {
        let value_ok = value.is_none_or(|v| v.len() == self.value_size);
        if key.len() != self.key_size || !value_ok {
            return Err(DeployError::MapEntrySize {
                map: self.name.clone(),
                key: key.len(),
                value: value.map_or(0, <[u8]>::len),
                want_key: self.key_size,
                want_value: self.value_size,
            });
        }
        Ok(())
    }

    /// Inserts or replaces one entry.
    pub(crate) fn update(&self, key: &[u8], value: &[u8]) -> Result<(), DeployError> {
        self.check(key, Some(value))?;
        self.syscall(
            BPF_MAP_UPDATE_ELEM,
            key,
            value.as_ptr() as u64,
            "bpf_map_update_elem",
        )
    }

    /// Deletes one entry (zeroes it in an array); a missing entry is not an
    /// error.
    pub(crate) fn delete(&self, key: &[u8]) -> Result<(), DeployError> {
        self.check(key, None)?;
        if self.array {
            return self.update(key, &vec![0u8; self.value_size]);
        }
        match self.syscall(BPF_MAP_DELETE_ELEM, key, 0, "bpf_map_delete_elem") {
            Err(DeployError::MapSyscall { ref source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            other => other,
        }
    }

    fn syscall(
        &self,
        cmd: libc::c_long,
        key: &[u8],
        value: u64,
        call: &'static str,
    ) -> Result<(), DeployError> {
        let attr = MapElemAttr {
            map_fd: self.data.fd().as_fd().as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value,
            flags: 0,
        };
        // SAFETY: `attr` points at buffers whose sizes were checked against
        // the map's key and value sizes, and they outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &attr as *const MapElemAttr,
                std::mem::size_of::<MapElemAttr>() as libc::c_uint,
            )
        };
        if rc < 0 {
            return Err(DeployError::MapSyscall {
                map: self.name.clone(),
                call,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(())
    }
}
