// What a search answer shows of each result (first path, label, size, tags, photo facts), kept in
// memory between searches. Presenting is otherwise two catalogue queries per answer, which under
// load cost as much CPU as the ranking itself (measured with perf on `serve` under wrk). Entries are
// dropped when the live library moves to another journal counter (an image added, changed or
// removed) and at the latest `maximumAge` seconds after they were read, so changes the journal does
// not record (a file renamed to a known content, photo facts filled in) show within that time.
import Foundation
import LookalikeEngine

public final class SummaryCache: Sendable {
    public let library: LiveLibrary
    public let maximumAge: Double
    public let capacity: Int

    private struct State: Sendable {
        var entries: [Int64: ImageSummary] = [:]
        var counter: Int64 = -1
        var filled = Date.distantPast
    }
    private let state = Locked(State())

    public init(library: LiveLibrary, maximumAge: Double = 10, capacity: Int = 200_000) {
        self.library = library
        self.maximumAge = maximumAge
        self.capacity = max(1, capacity)
    }

    /// Summaries of `imageIds` that are in the library (unknown ids are absent).
    public func summaries(imageIds: [Int64]) throws -> [Int64: ImageSummary] {
        let counter = library.counter
        let now = Date()
        var found: [Int64: ImageSummary] = [:]
        let missing: [Int64] = state.withLock { s in
            if s.counter != counter || now.timeIntervalSince(s.filled) > maximumAge {
                s.entries.removeAll(keepingCapacity: true)
                s.counter = counter
                s.filled = now
            }
            return imageIds.filter { id in
                if let hit = s.entries[id] { found[id] = hit; return false }
                return true
            }
        }
        guard !missing.isEmpty else { return found }
        let read = try library.catalogue.summaries(imageIds: missing)
        found.merge(read) { a, _ in a }
        state.withLock { s in
            guard s.counter == counter else { return }
            if s.entries.count + read.count > capacity { s.entries.removeAll(keepingCapacity: true) }
            s.entries.merge(read) { _, b in b }
        }
        return found
    }
}
