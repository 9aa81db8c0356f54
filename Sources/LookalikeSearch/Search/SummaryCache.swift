// What a search answer shows of each result (first path, label, size, tags, photo facts), kept in
// memory between searches. Presenting is otherwise two catalogue queries per answer, which under
// load cost as much CPU as the ranking itself (measured with perf on `serve` under wrk). Entries are
// dropped when the live library moves to another journal counter (an image added, changed or
// removed) and at the latest `maximumAge` seconds after they were read, so changes the journal does
// not record (a file renamed to a known content, photo facts filled in) show within that time.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public final class SummaryCache: Sendable {
    public let library: LiveLibrary
    public let maximumAge: Double
    public let capacity: Int

    private struct State: Sendable {
        /// Each summary and when it was read (an entry older than `maximumAge` is read again).
        var entries: [Int64: (summary: ImageSummary, read: Double)] = [:]
        var counter: Int64 = -1
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
        // Entries age one by one (not all dropped at once): a whole cache expiring together made
        // every answer of the next moment read the catalogue, a burst in the served tail latency.
        let now = Date().timeIntervalSinceReferenceDate
        var found: [Int64: ImageSummary] = [:]
        found.reserveCapacity(imageIds.count)
        let missing: [Int64] = state.withLock { s in
            if s.counter != counter {
                s.entries.removeAll(keepingCapacity: true)
                s.counter = counter
            }
            return imageIds.filter { id in
                if let hit = s.entries[id], now - hit.read <= maximumAge { found[id] = hit.summary; return false }
                return true
            }
        }
        guard !missing.isEmpty else { return found }
        let read = try library.catalogue.summaries(imageIds: missing)
        found.merge(read) { a, _ in a }
        state.withLock { s in
            guard s.counter == counter else { return }
            if s.entries.count + read.count > capacity { s.entries.removeAll(keepingCapacity: true) }
            for (id, summary) in read { s.entries[id] = (summary, now) }
        }
        return found
    }
}
