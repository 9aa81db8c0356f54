// Support/ holds the few concurrency and memory primitives the library's other folders share (with
// `Locked` from the engine): a reader-writer lock (searches run concurrently, updates exclusively), a growable raw row buffer
// with stable addresses (scanned by BLAS and the C kernels while a read lock is held), and a
// read-only memory mapping of a file (snapshots open without copying their vectors).
import Foundation
import LookalikeEngine

/// Many readers or one writer (pthread_rwlock). Searches take it shared, add/remove exclusively.
public final class ReadWriteLock: @unchecked Sendable {
    // Heap-allocated so its address never moves (pthread objects must not be copied).
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    public init() {
        lock = .allocate(capacity: 1)
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    public func read<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    public func write<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}

/// Rows of fixed byte size in one growable allocation. Not thread-safe: the owner guards it
/// (appends under its write lock; scans under its read lock, during which addresses are stable).
final class RowBuffer {
    let bytesPerRow: Int
    private(set) var rows = 0
    private var capacity = 0
    private(set) var base: UnsafeMutableRawPointer?

    init(bytesPerRow: Int) { self.bytesPerRow = bytesPerRow }
    deinit { base?.deallocate() }

    var byteCount: Int { rows * bytesPerRow }

    func reserve(rows wanted: Int) {
        guard wanted > capacity else { return }
        let newCapacity = max(wanted, capacity * 3 / 2, 256)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: newCapacity * bytesPerRow, alignment: 64)
        if let base {
            fresh.copyMemory(from: base, byteCount: rows * bytesPerRow)
            base.deallocate()
        }
        base = fresh
        capacity = newCapacity
    }

    /// Appends `count` rows copied from `source`.
    func append(_ source: UnsafeRawPointer, count: Int) {
        reserve(rows: rows + count)
        guard let base else { return }
        (base + rows * bytesPerRow).copyMemory(from: source, byteCount: count * bytesPerRow)
        rows += count
    }

    /// Appends `count` uninitialised rows and returns their address for the caller to fill.
    func appendUninitialised(count: Int) -> UnsafeMutableRawPointer? {
        reserve(rows: rows + count)
        guard let base else { return nil }
        let at = base + rows * bytesPerRow
        rows += count
        return at
    }

    func row(_ i: Int) -> UnsafeRawPointer? { base.map { UnsafeRawPointer($0 + i * bytesPerRow) } }
}

/// A file mapped read-only into memory; unmapped when the last reference goes.
package final class MappedFile: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    let path: String

    init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw IndexError("\(path): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw IndexError("\(path): cannot stat (\(String(cString: strerror(errno))))") }
        let size = Int(info.st_size)
        guard size > 0 else { throw IndexError("\(path): file is empty") }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw IndexError("\(path): cannot map (\(String(cString: strerror(errno))))")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    /// Drops the pages read so far from this process's resident set (they stay in the page cache
    /// and fault back in when used). After the checksum pass read every page, this leaves resident
    /// only what searches touch: a coarse index re-ranking a few rows of a 5 GB snapshot then
    /// holds those rows, not the whole file.
    func releaseResidentPages() {
        guard let base = bytes.baseAddress else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, MADV_DONTNEED)
        // Random access from here on: no read-ahead and (Linux >= 6.4) no fault-around, so touching
        // one row maps that row's pages, not the 64 KB around it.
        _ = madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, MADV_RANDOM)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}

/// Wraps values that are safe to share for the duration of a parallel loop (pointers into
/// buffers that are not mutated while the loop runs).
package struct UnsafeSendable<T>: @unchecked Sendable {
    package let value: T
    package init(_ value: T) { self.value = value }
}
