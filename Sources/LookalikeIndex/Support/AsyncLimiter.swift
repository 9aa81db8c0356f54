// A counting semaphore for async code: `run` suspends (never blocks a thread) until one of `permits`
// slots is free, then runs blocking work on a Dispatch thread. Used to bound expensive work a server
// is asked for all at once (thumbnails for a page of 100 images, uploads being read), so requests
// queue instead of exhausting memory or the cooperative threads.
import Dispatch

public actor AsyncLimiter {
    private var permits: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    public init(permits: Int) { self.permits = max(1, permits) }

    public func acquire() async {
        if permits > 0 {
            permits -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    public func release() {
        if waiters.isEmpty { permits += 1 } else { waiters.removeFirst().resume() }
    }

    /// Runs async `body` holding a permit.
    public nonisolated func withPermit<T: Sendable>(_ body: @Sendable () async throws -> T) async rethrows -> T {
        await acquire()
        do {
            let value = try await body()
            await release()
            return value
        } catch {
            await release()
            throw error
        }
    }

    /// Runs blocking `work` on a Dispatch thread holding a permit.
    public nonisolated func offload<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withPermit {
            try await withCheckedThrowingContinuation { continuation in
                DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try work() }) }
            }
        }
    }
}
