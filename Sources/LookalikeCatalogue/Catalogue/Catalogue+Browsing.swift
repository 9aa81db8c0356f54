// The catalogue as a person browses it: pages of images filtered by label or by a text that matches
// a label or one of the top-5 ImageNet tags, the labels with their image counts, one image's details
// (every path, photo metadata), the ids under a label or a folder (search restrictions), and the
// folders the library was indexed from. Paging and filtering are requests here, not in the server.
import Foundation
import GRDB

/// A page of the library, optionally filtered.
public struct ImageListRequest: Sendable, Equatable {
    /// Only images with a file under this label (exact).
    public var label: String?
    /// Only images whose label or tags contain this text (case-insensitive).
    public var text: String?
    /// 1-based.
    public var page: Int
    public var perPage: Int

    public init(label: String? = nil, text: String? = nil, page: Int = 1, perPage: Int = 60) {
        self.label = label
        self.text = text
        self.page = page
        self.perPage = perPage
    }
}

public struct ImageListPage: Sendable {
    public let total: Int
    public let page: Int
    public let perPage: Int
    public let items: [ImageSummary]
    public var pages: Int { perPage > 0 ? (total + perPage - 1) / perPage : 0 }

    package init(total: Int, page: Int, perPage: Int, items: [ImageSummary]) {
        self.total = total
        self.page = page
        self.perPage = perPage
        self.items = items
    }
}

public struct LabelCount: Sendable, Codable, Equatable {
    public let label: String
    public let count: Int

    package init(label: String, count: Int) {
        self.label = label
        self.count = count
    }
}

/// One image with all its paths (the first is its display path) and its photo metadata.
public struct ImageDetails: Sendable {
    public let image: ImageRecord
    public let files: [FileRecord]

    package init(image: ImageRecord, files: [FileRecord]) {
        self.image = image
        self.files = files
    }
}

extension Catalogue {
    /// One page of images in id order (the order they were indexed), with the total that matched.
    public func images(_ request: ImageListRequest) throws -> ImageListPage {
        let perPage = max(1, request.perPage)
        let page = max(1, request.page)
        let (total, ids) = try pool.read { db -> (Int, [Int64]) in
            let query = Self.listQuery(request)
            let total = try query.fetchCount(db)
            let ids = try Int64.fetchAll(db, query.select(ImageRecord.Columns.id)
                .order(ImageRecord.Columns.id).limit(perPage, offset: (page - 1) * perPage))
            return (total, ids)
        }
        let summaries = try self.summaries(imageIds: ids)
        return ImageListPage(total: total, page: page, perPage: perPage, items: ids.compactMap { summaries[$0] })
    }

    static func listQuery(_ request: ImageListRequest) -> QueryInterfaceRequest<ImageRecord> {
        var query = ImageRecord.all()
        if let label = request.label, !label.isEmpty {
            query = query.joining(required: ImageRecord.files.filter(FileRecord.Columns.label == label)).distinct()
        }
        if let text = request.text?.trimmingCharacters(in: .whitespaces), !text.isEmpty {
            let pattern = "%" + likeEscaped(text) + "%"
            let matching = TableAlias()
            query = query
                .joining(optional: ImageRecord.files.aliased(matching).filter(FileRecord.Columns.label.like(pattern, escape: "\\")))
                .filter(ImageRecord.Columns.tags.like(pattern, escape: "\\") || matching[FileRecord.Columns.label] != nil)
                .distinct()
        }
        return query
    }

    static func likeEscaped(_ text: String) -> String {
        text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
            .replacingOccurrences(of: "_", with: "\\_")
    }

    /// Every label with the number of images under it, by label.
    public func labelCounts() throws -> [LabelCount] {
        try pool.read { db in
            let rows = try Row.fetchAll(db, FileRecord
                .select(FileRecord.Columns.label, count(distinct: FileRecord.Columns.imageId))
                .group(FileRecord.Columns.label).order(FileRecord.Columns.label))
            return rows.map { LabelCount(label: $0[0], count: $0[1]) }
        }
    }

    public func details(imageId: Int64) throws -> ImageDetails? {
        try pool.read { db in
            guard let image = try ImageRecord.fetchOne(db, key: imageId) else { return nil }
            let files = try FileRecord.all().filter(imageId: imageId).inInsertionOrder().fetchAll(db)
            guard !files.isEmpty else { return nil }
            return ImageDetails(image: image, files: files)
        }
    }

    /// Ids of the images with a file under `label`.
    public func imageIds(label: String) throws -> Set<Int64> {
        try pool.read { db in
            try Int64.fetchSet(db, FileRecord.select(FileRecord.Columns.imageId).filter(FileRecord.Columns.label == label))
        }
    }

    /// Ids of the images with a file under the folder `prefix` (an absolute path ending in "/").
    /// A range on the path column (byte order), so it uses the path index and is case-exact.
    public func imageIds(pathPrefix prefix: String) throws -> Set<Int64> {
        guard prefix.hasSuffix("/") else { return try imageIds(pathPrefix: prefix + "/") }
        let upper = String(prefix.dropLast()) + "0"  // "0" follows "/" in byte order
        return try pool.read { db in
            try Int64.fetchSet(db, FileRecord.select(FileRecord.Columns.imageId)
                .filter(FileRecord.Columns.path >= prefix && FileRecord.Columns.path < upper))
        }
    }

    /// The folders the library was indexed from, as absolute paths. Runs recorded before roots were
    /// stored absolute are resolved through a file path that contains them.
    public func libraryRoots() throws -> [String] {
        try pool.read { db in
            let recorded = try String.fetchAll(db, IndexRunRecord.select(Column("roots")))
                .flatMap { $0.split(separator: "\n").map(String.init) }
            var roots: [String] = []
            for root in Set(recorded) where !root.isEmpty {
                var absolute: String?
                if root.hasPrefix("/") {
                    absolute = URL(fileURLWithPath: root).standardizedFileURL.path
                } else {
                    let relative = root.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
                    guard !relative.isEmpty, !relative.contains("..") else { continue }
                    let marker = "/" + relative + "/"
                    if let path = try String.fetchOne(db, FileRecord.select(FileRecord.Columns.path)
                        .filter(FileRecord.Columns.path.like("%" + Self.likeEscaped(marker) + "%", escape: "\\")).limit(1)),
                       let range = path.range(of: marker) {
                        absolute = String(path[..<range.lowerBound]) + "/" + relative
                    }
                }
                if let absolute, !roots.contains(absolute) { roots.append(absolute) }
            }
            return roots.sorted()
        }
    }
}
