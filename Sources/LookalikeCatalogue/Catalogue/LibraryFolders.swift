// How paths are shown to people who should not see the machine's layout (the server beyond
// loopback): relative to the folder the library was indexed from, led by that folder's name
// (`101_ObjectCategories/airplanes/image_0001.jpg`), never the absolute path. The same type maps a
// folder named that way back to an absolute prefix for search restrictions.
import Foundation

public struct LibraryFolders: Sendable {
    /// Absolute roots, longest first (so a nested root wins over its parent).
    public let roots: [String]

    /// Per root: its path with a trailing "/" and its last component, worked out once (every
    /// search result is displayed through here).
    private let prefixes: [(root: String, slashed: String, name: String)]

    public init(roots: [String]) {
        self.roots = roots.map { $0.hasSuffix("/") && $0.count > 1 ? String($0.dropLast()) : $0 }
            .sorted { $0.count > $1.count }
        prefixes = self.roots.map { ($0, $0 + "/", ($0 as NSString).lastPathComponent) }
    }

    public init(catalogue: Catalogue) throws {
        self.init(roots: try catalogue.libraryRoots())
    }

    /// `<root folder name>/<path inside it>`; a path under no known root shows its last two parts.
    public func display(_ path: String) -> String {
        for (root, slashed, name) in prefixes {
            if path.utf8.count == root.utf8.count, path == root { return name }
            if path.utf8.starts(with: slashed.utf8) {
                let rest = String(decoding: path.utf8.dropFirst(slashed.utf8.count), as: UTF8.self)
                return name.isEmpty ? rest : name + "/" + rest
            }
        }
        let parts = path.split(separator: "/")
        return parts.suffix(2).joined(separator: "/")
    }

    /// The absolute prefix (ending in "/") of a folder given as `display` shows it
    /// (`101_ObjectCategories/airplanes`), nil when it names no folder of the library. Refuses
    /// `..` and empty parts, so a client cannot point outside the library's folders.
    public func absolutePrefix(folder: String) -> String? {
        let parts = folder.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let head = parts.first, !parts.contains(".."), !parts.contains(".") else { return nil }
        for root in roots where (root as NSString).lastPathComponent == head {
            let rest = parts.dropFirst().joined(separator: "/")
            return root + "/" + (rest.isEmpty ? "" : rest + "/")
        }
        return nil
    }

    /// The top-level folders as `display` names them (for a folder selector).
    public var names: [String] { roots.map { ($0 as NSString).lastPathComponent }.sorted() }
}
