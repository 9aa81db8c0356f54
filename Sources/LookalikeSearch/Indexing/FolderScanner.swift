// Folder scanning: walks the folders given to `lookalike index` recursively and lists the image
// files in them with their size and modification time. A file counts as an image by its content
// (magic bytes), not only by its extension: `photo.dat` holding a JPEG is indexed, and `notes.jpg`
// holding text is reported as a failure by the decoder. Hidden files and folders are skipped.
// Symbolic links to files are indexed under the link's path; links to folders are not followed
// (a link cycle would never end).
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex

public struct ScannedFile: Sendable, Hashable {
    public let path: String
    public let fileSize: Int64
    public let mtime: Double
    /// Parent folder name: the image's label.
    public var label: String { URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent }
}

public enum FolderScanner {
    public static let imageExtensions: Set<String> = [
        "jpg", "jpeg", "jpe", "jfif", "png", "gif", "webp", "bmp", "tif", "tiff",
        "heic", "heif", "hif", "avif", "jxl",
    ]

    /// All image files under `roots` (folders or single files), sorted by path.
    /// Roots that do not exist are returned in `missingRoots`.
    public static func scan(_ roots: [String], skipping excluded: Set<String> = []) -> (files: [ScannedFile], missingRoots: [String]) {
        var files: [ScannedFile] = []
        var missing: [String] = []
        var seen = Set<String>()
        let fm = FileManager.default
        for root in roots {
            let rootURL = URL(fileURLWithPath: root).standardizedFileURL
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: rootURL.path, isDirectory: &isDirectory) else {
                missing.append(root)
                continue
            }
            if !isDirectory.boolValue {
                if let file = stat(rootURL.path), seen.insert(file.path).inserted { files.append(file) }
                continue
            }
            let keys: [URLResourceKey] = [.isRegularFileKey, .isSymbolicLinkKey, .fileSizeKey, .contentModificationDateKey]
            guard let walker = fm.enumerator(at: rootURL, includingPropertiesForKeys: keys,
                                             options: [.skipsHiddenFiles]) else { continue }
            for case let url as URL in walker {
                let path = url.standardizedFileURL.path
                guard !excluded.contains(path), let values = try? url.resourceValues(forKeys: Set(keys)) else { continue }
                var file: ScannedFile?
                if values.isRegularFile == true {
                    file = ScannedFile(path: path, fileSize: Int64(values.fileSize ?? 0),
                                       mtime: values.contentModificationDate?.timeIntervalSince1970 ?? 0)
                } else if values.isSymbolicLink == true, let target = stat(url.resolvingSymlinksInPath().path) {
                    file = ScannedFile(path: path, fileSize: target.fileSize, mtime: target.mtime)
                }
                guard let file else { continue }
                let ext = url.pathExtension.lowercased()
                guard imageExtensions.contains(ext) || ImageDecoder.sniff(path: path) else { continue }
                if seen.insert(path).inserted { files.append(file) }
            }
        }
        files.sort { $0.path < $1.path }
        return (files, missing)
    }

    static func stat(_ path: String) -> ScannedFile? {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              (attributes[.type] as? FileAttributeType) == .typeRegular else { return nil }
        let size = (attributes[.size] as? NSNumber)?.int64Value ?? 0
        let mtime = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return ScannedFile(path: path, fileSize: size, mtime: mtime)
    }
}
