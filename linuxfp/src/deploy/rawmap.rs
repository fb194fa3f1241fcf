// SPDX-License-Identifier: MIT OR Apache-2.0
//! Byte-level map writes, for plans whose map contents are plain bytes.
//! aya's typed maps need the key and value types at compile time; the
//! deployer works for any FPM, so it writes the bytes the FPM planned.

use std::os::fd::{AsFd, AsRawFd};

use aya::maps::MapData;

use super::DeployError;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// Entries per batch call: large enough that the syscall's own cost
/// vanishes, small enough that the kernel's copy of keys stays cheap.
const BATCH: usize = 4096;

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf_attr` of the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
struct MapBatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
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

    /// Inserts or replaces every entry of `entries`, in order, in as few
    /// syscalls as the map allows (`BPF_MAP_UPDATE_BATCH`, kernel 5.6;
    /// maps without it, such as devmaps, one by one).
    /// Returns how many were written: all of them, or those before the
    /// error.
    pub(crate) fn update_all(
        &self,
        entries: &[(&[u8], &[u8])],
    ) -> (usize, Result<(), DeployError>) {
        for (k, v) in entries {
            if let Err(e) = self.check(k, Some(v)) {
                return (0, Err(e));
            }
        }
        let mut done = 0;
        while done < entries.len() {
            let part = &entries[done..entries.len().min(done + BATCH)];
            let keys: Vec<u8> = part.iter().flat_map(|(k, _)| k.iter().copied()).collect();
            let values: Vec<u8> = part.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let n = self.batch(BPF_MAP_UPDATE_BATCH, &keys, Some(&values), part.len());
            done += n.unwrap_or(0);
            if n != Some(part.len()) {
                // No batch support, or an entry it refused: one by one
                // from there, for the error of the entry itself.
                for (k, v) in &entries[done..] {
                    if let Err(e) = self.update(k, v) {
                        return (done, Err(e));
                    }
                    done += 1;
                }
            }
        }
        (done, Ok(()))
    }

    /// Deletes every key of `keys` (zeroes them in an array), missing ones
    /// included, batched as [`RawMap::update_all`]. Returns how many were
    /// deleted: all of them, or those before the error.
    pub(crate) fn delete_all(&self, keys: &[&[u8]]) -> (usize, Result<(), DeployError>) {
        if self.array {
            let zero = vec![0u8; self.value_size];
            let entries: Vec<(&[u8], &[u8])> = keys.iter().map(|k| (*k, zero.as_slice())).collect();
            return self.update_all(&entries);
        }
        for k in keys {
            if let Err(e) = self.check(k, None) {
                return (0, Err(e));
            }
        }
        let mut done = 0;
        while done < keys.len() {
            let part = &keys[done..keys.len().min(done + BATCH)];
            let flat: Vec<u8> = part.iter().flat_map(|k| k.iter().copied()).collect();
            match self.batch(BPF_MAP_DELETE_BATCH, &flat, None, part.len()) {
                Some(n) => {
                    done += n;
                    // A batch stops at a missing key (ENOENT), which is no
                    // error here: that key alone, then batches again.
                    if n < part.len() {
                        match self.delete(keys[done]) {
                            Ok(()) => done += 1,
                            Err(e) => return (done, Err(e)),
                        }
                    }
                }
                None => {
                    // No batch support: one by one, without asking again.
                    for k in &keys[done..] {
                        if let Err(e) = self.delete(k) {
                            return (done, Err(e));
                        }
                        done += 1;
                    }
                }
            }
        }
        (done, Ok(()))
    }

    /// One batch call over `count` packed keys (and values); returns how
    /// many entries the kernel processed, `None` when the map or kernel has
    /// no such batch operation.
    fn batch(
        &self,
        cmd: libc::c_long,
        keys: &[u8],
        values: Option<&[u8]>,
        count: usize,
    ) -> Option<usize> {
        let mut attr = MapBatchAttr {
            in_batch: 0,
            out_batch: 0,
            keys: keys.as_ptr() as u64,
            values: values.map_or(0, |v| v.as_ptr() as u64),
            count: u32::try_from(count).unwrap_or(u32::MAX),
            map_fd: self.data.fd().as_fd().as_raw_fd() as u32,
            elem_flags: 0,
            flags: 0,
        };
        // SAFETY: `keys` (and `values`) hold `count` packed entries of the
        // map's key (value) size, checked by the callers, and outlive the
        // call; the kernel writes back only `attr.count`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &mut attr as *mut MapBatchAttr,
                std::mem::size_of::<MapBatchAttr>() as libc::c_uint,
            )
        };
        if rc == 0 {
            return Some(count);
        }
        // On an entry's error the kernel reports how many it processed
        // before it (fewer than given); a map without batch operations
        // (ENOTSUPP) or a kernel without the command (EINVAL) leaves the
        // count as given: nothing done.
        let processed = attr.count as usize;
        (processed < count).then_some(processed)
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

#[cfg(test)]
mod tests {
    //! Batched writes against real maps (root: creating maps needs
    //! CAP_BPF; skipped otherwise): every map type the deployer meets,
    //! with batch operations (hash, array, LPM trie) or without (devmap).
    use std::os::fd::{AsFd, AsRawFd};

    use aya::maps::{Array, HashMap, IterableMap, LpmTrie, MapData, lpm_trie::Key};

    use super::RawMap;

    fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("skipped: needs root to create maps");
        }
        root
    }

    fn raw(fd: &aya::maps::MapFd, name: &str) -> RawMap {
        let owned = fd.as_fd().try_clone_to_owned().expect("dup");
        RawMap::new(name, MapData::from_fd(owned).expect("map data")).expect("raw map")
    }

    fn slices(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
        entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect()
    }

    /// Keys and values laid end to end, as a batch call takes them.
    fn packed(refs: &[(&[u8], &[u8])]) -> (Vec<u8>, Vec<u8>) {
        (
            refs.iter().flat_map(|(k, _)| k.iter().copied()).collect(),
            refs.iter().flat_map(|(_, v)| v.iter().copied()).collect(),
        )
    }

    /// Whether `key` is in the map (`BPF_MAP_LOOKUP_ELEM`).
    fn present(r: &RawMap, key: &[u8], value_size: usize) -> bool {
        const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
        let mut value = vec![0u8; value_size];
        let attr = super::MapElemAttr {
            map_fd: r.data.fd().as_fd().as_raw_fd() as u32,
            _pad: 0,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        };
        // SAFETY: key and value buffers of the map's sizes, alive for the
        // call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_ELEM,
                &attr as *const super::MapElemAttr,
                size_of::<super::MapElemAttr>() as libc::c_uint,
            )
        };
        rc == 0
    }

    fn bytes<T: Copy>(v: &T) -> Vec<u8> {
        // SAFETY: plain integers, read as their bytes.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn a_hash_map_is_written_and_emptied_in_batches_missing_keys_included() {
        if !root() {
            return;
        }
        let map: HashMap<MapData, u32, u64> = HashMap::create(20_000, 0).expect("create");
        let r = raw(map.map().fd(), "test/hash");
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..10_000u32)
            .map(|i| (bytes(&i), bytes(&(u64::from(i) * 3))))
            .collect();
        let refs = slices(&entries);
        // The batch operation itself, not the fallback, takes them here.
        let (keys, values) = packed(&refs[..2]);
        assert_eq!(
            r.batch(super::BPF_MAP_UPDATE_BATCH, &keys, Some(&values), 2),
            Some(2)
        );
        let (n, res) = r.update_all(&refs);
        res.expect("update");
        assert_eq!(n, 10_000);
        assert_eq!(map.get(&4321, 0).expect("entry"), 4321 * 3);
        // Keys 20_000.. do not exist: a batch stops at each of them.
        let gone: Vec<Vec<u8>> = (5_000..10_000u32)
            .chain(20_000..20_003)
            .chain(0..10)
            .map(|i| bytes(&i))
            .collect();
        let keys: Vec<&[u8]> = gone.iter().map(Vec::as_slice).collect();
        let (n, res) = r.delete_all(&keys);
        res.expect("delete");
        assert_eq!(n, keys.len());
        assert!(map.get(&7_000, 0).is_err() && map.get(&3, 0).is_err());
        assert_eq!(map.keys().count(), 4_990);
    }

    #[test]
    fn an_array_is_written_in_batches_and_removal_zeroes() {
        if !root() {
            return;
        }
        let map: Array<MapData, u64> = Array::create(64, 0).expect("create");
        let r = raw(map.map().fd(), "test/array");
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..64u32)
            .map(|i| (bytes(&i), bytes(&(u64::from(i) + 1))))
            .collect();
        let refs = slices(&entries);
        assert_eq!(r.update_all(&refs).0, 64);
        assert_eq!(map.get(&63, 0).expect("entry"), 64);
        let k = bytes(&5u32);
        assert_eq!(r.delete_all(&[k.as_slice()]).0, 1);
        assert_eq!(map.get(&5, 0).expect("entry"), 0);
        // Out of range: the batch stops there, and the error names it.
        let bad = (bytes(&64u32), bytes(&1u64));
        let (n, res) = r.update_all(&[refs[0], (bad.0.as_slice(), bad.1.as_slice())]);
        assert_eq!(n, 1);
        assert!(res.is_err());
    }

    #[test]
    fn an_lpm_trie_is_written_and_emptied() {
        if !root() {
            return;
        }
        // LPM tries must be created without preallocation.
        let map: LpmTrie<MapData, u32, u8> = LpmTrie::create(1024, 1).expect("create");
        let r = raw(map.map().fd(), "test/lpm");
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..300u32)
            .map(|i| (bytes(&Key::new(32, i.to_be())), vec![(i % 200) as u8]))
            .collect();
        let refs = slices(&entries);
        let (n, res) = r.update_all(&refs);
        res.expect("update");
        assert_eq!(n, 300);
        assert_eq!(
            map.get(&Key::new(32, 250u32.to_be()), 0).expect("entry"),
            50
        );
        let keys: Vec<&[u8]> = refs.iter().map(|(k, _)| *k).collect();
        let (n, res) = r.delete_all(&keys);
        res.expect("delete");
        assert_eq!(n, 300);
        assert_eq!(map.keys().count(), 0);
        // A key of the wrong size: nothing written, the error says so.
        let (n, res) = r.update_all(&[(&[1u8, 2][..], &[0u8][..])]);
        assert_eq!(n, 0);
        assert!(matches!(res, Err(super::DeployError::MapEntrySize { .. })));
    }

    /// A devmap (`BPF_MAP_TYPE_DEVMAP_HASH`, as the router's ports), which
    /// has no batch operations, created with a raw `BPF_MAP_CREATE`: aya
    /// creates no standalone devmaps. Its entries name loopback; the map
    /// is attached to nothing.
    #[test]
    fn a_map_without_batch_operations_is_written_one_by_one() {
        if !root() {
            return;
        }
        #[repr(C)]
        struct CreateAttr {
            map_type: u32,
            key_size: u32,
            value_size: u32,
            max_entries: u32,
            map_flags: u32,
        }
        const BPF_MAP_CREATE: libc::c_long = 0;
        const BPF_MAP_TYPE_DEVMAP_HASH: u32 = 25;
        let attr = CreateAttr {
            map_type: BPF_MAP_TYPE_DEVMAP_HASH,
            key_size: 4,
            value_size: 4,
            max_entries: 64,
            map_flags: 0,
        };
        // SAFETY: a valid map-create attribute of the size given; the
        // returned descriptor is owned below.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_CREATE,
                &attr as *const CreateAttr,
                size_of::<CreateAttr>() as libc::c_uint,
            )
        };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let owned =
            unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
        let r = RawMap::new("test/devmap", MapData::from_fd(owned).expect("map data"))
            .expect("raw map");
        let entries: Vec<(Vec<u8>, Vec<u8>)> =
            (10..40u32).map(|i| (bytes(&i), bytes(&1u32))).collect();
        let refs = slices(&entries);
        let (keys, values) = packed(&refs[..2]);
        assert_eq!(
            r.batch(super::BPF_MAP_UPDATE_BATCH, &keys, Some(&values), 2),
            None,
            "devmaps have no batch operations"
        );
        let (n, res) = r.update_all(&refs);
        res.expect("update");
        assert_eq!(n, 30);
        assert!(present(&r, &bytes(&25u32), 4));
        // Deletes, a missing key among them, fall back the same way.
        let gone: Vec<Vec<u8>> = (10..40u32).chain([50]).map(|i| bytes(&i)).collect();
        let keys: Vec<&[u8]> = gone.iter().map(Vec::as_slice).collect();
        let (n, res) = r.delete_all(&keys);
        res.expect("delete");
        assert_eq!(n, 31);
        for i in 10..40u32 {
            assert!(!present(&r, &bytes(&i), 4), "{i} still there");
        }
    }
}
