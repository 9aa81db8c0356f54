// Keeps a library in step with its folders (`lookalike index --watch`): polls the folders' listing
// (path, size, mtime of every image file) and, when it changed and then stayed the same for the
// debounce period (a copy in progress settles first), reruns the incremental indexer with pruning,
// so new, changed and deleted files reach the catalogue, and through its change journal every
// running server, without a command. Polling rather than inotify: it works on network mounts and
// costs one directory walk per interval (about 40 ms for 10,000 files).
import Foundation
import LookalikeCatalogue
import LookalikeIndex

public struct FolderWatcher: Sendable {
    public let roots: [String]
    public let interval: Double
    public let debounce: Double
    let excluded: Set<String>

    public init(roots: [String], catalogue: Catalogue, interval: Double = 2, debounce: Double = 1) {
        self.roots = roots
        self.interval = max(0.05, interval)
        self.debounce = max(0, debounce)
        excluded = Set(["", "-wal", "-shm", "-journal"].map {
            URL(fileURLWithPath: catalogue.path + $0).standardizedFileURL.path
        })
    }

    /// A value that changes when any image file under the roots is added, removed or modified.
    public func signature() -> Int {
        var hasher = Hasher()
        for file in FolderScanner.scan(roots, skipping: excluded).files { hasher.combine(file) }
        return hasher.finalize()
    }

    /// Polls until `shouldStop` returns true; calls `changed` (which runs the indexer) once the
    /// listing differs from the last indexed one and has been stable for `debounce` seconds.
    public func run(shouldStop: @Sendable () -> Bool, changed: () throws -> Void) rethrows {
        var indexed = signature()
        while !shouldStop() {
            Thread.sleep(forTimeInterval: interval)
            var current = signature()
            guard current != indexed else { continue }
            // Debounce: wait until two looks `debounce` apart agree.
            while !shouldStop() {
                Thread.sleep(forTimeInterval: debounce)
                let again = signature()
                if again == current { break }
                current = again
            }
            if shouldStop() { return }
            try changed()
            indexed = current
        }
    }
}
