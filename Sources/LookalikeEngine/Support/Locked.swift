// Support/ holds the engine's one general-purpose concurrency primitive, shared by the library and
// the CLI: a value guarded by a mutex. Types that must wait on a condition (the runner pool, the
// ordered delivery window, the benchmark's bounded queue) keep their own NSCondition.
import Synchronization

/// A value guarded by a mutex: the one small wrapper the library uses instead of hand-written
/// lock classes (Synchronization.Mutex in a class, so it can be shared by reference).
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<T: Sendable>(_ body: (inout Value) throws -> T) rethrows -> T {
        try mutex.withLock { try body(&$0) }
    }
    public var value: Value { mutex.withLock { $0 } }
}

