// FormatTests: the photo formats phones write (HEIC, AVIF, JPEG XL) and the EXIF facts of a photo,
// against small committed fixtures in Fixtures/decode made by scripts/make_format_fixtures.py
// from cat.jpg: each format decodes to the same picture as the JPEG (pixels, and embeddings with
// cosine >= 0.98), HEIF irot is applied once, ICC profiles are honoured, the primary image of a multi-image file is used,
// alpha is flattened on white, a stored thumbnail is used only when big enough and embeds like
// the full image, names that lie about the format do not matter, broken and oversized files get
// typed errors naming the file; and capture time, camera and GPS are read from JPEG (fast path),
// HEIC, AVIF, PNG, WebP and TIFF, by decoding and by the header-only `metadata(path:)`.
import Foundation
import Testing
import LookalikeEngine

private func fixture(_ name: String) -> String {
    let folder: URL
    if let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) {
        folder = url.appendingPathComponent("decode")
    } else {
        folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent("decode")
    }
    return folder.appendingPathComponent(name).path
}

private func catJPEG() -> String {
    URL(fileURLWithPath: fixture("x")).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("cat.jpg").path
}

/// Mean absolute difference of two decoded images' pixels (0...255).
private func meanAbsDiff(_ a: [UInt8], _ b: [UInt8]) -> Double {
    precondition(a.count == b.count)
    var sum = 0
    for i in a.indices { sum += abs(Int(a[i]) - Int(b[i])) }
    return Double(sum) / Double(a.count)
}

/// The same pixels turned 180 degrees (a wrongly oriented decode would look like this).
private func rotated180(_ p: [UInt8]) -> [UInt8] {
    let n = p.count / 3
    var out = [UInt8](repeating: 0, count: p.count)
    for i in 0..<n {
        let j = n - 1 - i
        out[3 * j] = p[3 * i]; out[3 * j + 1] = p[3 * i + 1]; out[3 * j + 2] = p[3 * i + 2]
    }
    return out
}

private func pixel(_ image: DecodedImage, _ row: Int, _ col: Int) -> (Int, Int, Int) {
    let i = (row * ImageDecoder.outputSize + col) * 3
    return (Int(image.pixels[i]), Int(image.pixels[i + 1]), Int(image.pixels[i + 2]))
}

private func meanColour(_ image: DecodedImage) -> (Double, Double, Double) {
    var s = (0.0, 0.0, 0.0)
    for i in stride(from: 0, to: image.pixels.count, by: 3) {
        s.0 += Double(image.pixels[i]); s.1 += Double(image.pixels[i + 1]); s.2 += Double(image.pixels[i + 2])
    }
    let n = Double(image.pixels.count / 3)
    return (s.0 / n, s.1 / n, s.2 / n)
}

private func near(_ a: (Double, Double, Double), _ b: (Int, Int, Int), _ tolerance: Double) -> Bool {
    abs(a.0 - Double(b.0)) <= tolerance && abs(a.1 - Double(b.1)) <= tolerance && abs(a.2 - Double(b.2)) <= tolerance
}

private func near(_ a: (Int, Int, Int), _ b: (Int, Int, Int), _ tolerance: Int) -> Bool {
    abs(a.0 - b.0) <= tolerance && abs(a.1 - b.1) <= tolerance && abs(a.2 - b.2) <= tolerance
}

private func cosine(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { $0 * $1 }.reduce(0, +)  // both L2-normalised
}

private func decodeError(_ name: String) -> DecodeError? {
    do {
        _ = try ImageDecoder.decode(path: fixture(name))
        return nil
    } catch {
        return error
    }
}

@Suite("Formats")
struct FormatTests {
    static let embedder: Result<Embedder, Error> = Result { try Embedder(weightsURL: try TestSupport.weightsURL(), threads: 1, descriptor: .centreCrop) }

    // MARK: decoding

    @Test("HEIC, AVIF and JPEG XL (codestream and container) decode to the JPEG's picture",
          arguments: ["cat.heic", "cat.avif", "cat.jxl", "cat_container.jxl", "cat_irot.heic"])
    func samePictureAsJPEG(name: String) throws {
        let image = try ImageDecoder.decode(path: fixture(name))
        let jpeg = try ImageDecoder.decode(path: catJPEG())
        #expect(image.width == 451 && image.height == 300, "\(name): \(image.width)x\(image.height)")
        #expect(image.pixels.count == 224 * 224 * 3)
        let diff = meanAbsDiff(image.pixels, jpeg.pixels)
        #expect(diff < 6, "\(name): mean abs difference to the JPEG \(diff)")
        #expect(ImageDecoder.sniff(path: fixture(name)))
    }

    @Test("a HEIC stored sideways with irot (and EXIF Orientation 6, as phones write) decodes upright, turned once")
    func irotUpright() throws {
        let image = try ImageDecoder.decode(path: fixture("cat_irot.heic"))
        let upright = try ImageDecoder.decode(path: catJPEG()).pixels
        #expect(image.width == 451 && image.height == 300)
        let diff = meanAbsDiff(image.pixels, upright)
        let diffTurned = meanAbsDiff(rotated180(image.pixels), upright)
        #expect(diff < 6, "upright: \(diff)")
        #expect(diffTurned > 4 * diff, "turned 180 degrees should not match: \(diffTurned) vs \(diff)")
    }

    @Test("the embedding of each format agrees with the JPEG's (cosine >= 0.98)",
          arguments: ["cat.heic", "cat.avif", "cat.jxl", "cat_container.jxl", "cat_irot.heic",
                      "cat_thumb.heic", "cat_thumb_small.heic", "cat_thumb_phone.heic"])
    func embeddingAgrees(name: String) throws {
        let embedder = try Self.embedder.get()
        let jpeg = try embedder.embed(path: catJPEG()).1
        let other = try embedder.embed(path: fixture(name)).1
        let c = cosine(jpeg.vector, other.vector)
        #expect(c >= 0.98, "\(name): cosine to the JPEG \(c)")
    }

    @Test("a big enough stored HEIC thumbnail is used, and embeds like the full image; a small one is not")
    func storedThumbnail() throws {
        let embedder = try Self.embedder.get()
        let viaThumb = try ImageDecoder.decode(path: fixture("cat_thumb.heic"))
        let full = try ImageDecoder.decode(path: fixture("cat_thumb.heic"), storedThumbnail: false)
        #expect(viaThumb.width == 480 && viaThumb.height == 320, "original size is reported, not the thumbnail's")
        #expect(full.width == 480 && full.height == 320)
        #expect(viaThumb.pixels != full.pixels, "the 400x266 thumbnail should have been decoded")
        let c = cosine(try embedder.embed(viaThumb).vector, try embedder.embed(full).vector)
        #expect(c >= 0.98, "thumbnail vs full decode: cosine \(c)")
        #expect(meanAbsDiff(viaThumb.pixels, full.pixels) < 6)

        // 240x160 is below the 224-px short side (the network input): the full image is decoded.
        let small = try ImageDecoder.decode(path: fixture("cat_thumb_small.heic"))
        let smallFull = try ImageDecoder.decode(path: fixture("cat_thumb_small.heic"), storedThumbnail: false)
        #expect(small.pixels == smallFull.pixels)

        // 336x224: a short side of 224, the network's input (a phone's 320x240 has 240), is enough.
        let phone = try ImageDecoder.decode(path: fixture("cat_thumb_phone.heic"))
        let phoneFull = try ImageDecoder.decode(path: fixture("cat_thumb_phone.heic"), storedThumbnail: false)
        #expect(phone.width == 480 && phone.height == 320)
        #expect(phone.pixels != phoneFull.pixels, "the 336x224 thumbnail should have been decoded")
        let cPhone = cosine(try embedder.embed(phone).vector, try embedder.embed(phoneFull).vector)
        #expect(cPhone >= 0.98, "336x224 thumbnail vs full decode: cosine \(cPhone)")
    }

    @Test("a HEIC whose stored thumbnail is damaged is decoded from the photo itself")
    func damagedThumbnail() throws {
        let image = try ImageDecoder.decode(path: fixture("cat_thumb_damaged.heic"))
        let full = try ImageDecoder.decode(path: fixture("cat_thumb.heic"), storedThumbnail: false)
        #expect(image.width == 480 && image.height == 320)
        #expect(image.pixels == full.pixels)
    }

    @Test("a multi-image HEIC decodes its primary image (the second of three here)")
    func primaryImage() throws {
        let image = try ImageDecoder.decode(path: fixture("multi.heic"))
        #expect(near(meanColour(image), (30, 40, 220), 8), "\(meanColour(image))")
    }

    @Test("HEIC and AVIF alpha is flattened on white", arguments: ["rgba.heic", "rgba.avif"])
    func alphaOnWhite(name: String) throws {
        // left half transparent, right half opaque blue
        let image = try ImageDecoder.decode(path: fixture(name))
        #expect(near(pixel(image, 112, 10), (255, 255, 255), 6), "\(name): \(pixel(image, 112, 10))")
        #expect(near(pixel(image, 112, 214), (0, 0, 255), 12), "\(name): \(pixel(image, 112, 214))")
    }

    @Test("a HEIC's colour profile is honoured: sRGB green stored as Display P3 numbers decodes green")
    func colourProfile() throws {
        let image = try ImageDecoder.decode(path: fixture("p3_green.heic"))
        let mean = meanColour(image)
        #expect(near(mean, (0, 255, 0), 16), "\(mean)")  // the P3 numbers are about (116, 251, 77)
    }

    @Test("names do not matter: a HEIC named .jpg and a JPEG named .heic decode by content")
    func lyingExtensions() throws {
        let heic = try ImageDecoder.decode(path: fixture("heic_named.jpg"))
        #expect(near(meanColour(heic), (30, 200, 40), 6), "\(meanColour(heic))")
        let jpeg = try ImageDecoder.decode(path: fixture("jpeg_named.heic"))
        #expect(near(meanColour(jpeg), (230, 210, 20), 3), "\(meanColour(jpeg))")
        #expect(ImageDecoder.sniff(path: fixture("heic_named.jpg")))
        #expect(ImageDecoder.sniff(path: fixture("jpeg_named.heic")))
    }

    @Test("truncated, corrupt and oversized HEIC / AVIF / JPEG XL files get typed errors naming the file",
          arguments: [
              ("truncated.heic", DecodeError.Reason.truncated), ("truncated.avif", .truncated),
              ("truncated_container.jxl", .truncated), ("bomb.heic", .tooLarge(width: 12000, height: 12000)),
          ])
    func brokenFiles(name: String, reason: DecodeError.Reason) throws {
        let error = decodeError(name)
        #expect(error?.reason == reason, "\(name): \(String(describing: error))")
        #expect(error?.path == fixture(name))
        #expect(error?.description.contains(name) == true)
        // the same bytes from memory
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture(name))))
        do {
            _ = try ImageDecoder.decode(data: bytes, name: name)
            Issue.record("\(name) decoded from memory")
        } catch {
            #expect(error.reason == reason, "\(name) from memory: \(error)")
            #expect(error.description.hasPrefix("\(name):"))
        }
    }

    @Test("corrupt HEIC / AVIF / JPEG XL files are reported as corrupt",
          arguments: ["corrupt.heic", "corrupt.avif", "corrupt.jxl", "truncated.jxl"])
    func corruptFiles(name: String) throws {
        // A bare JPEG XL codestream cut short cannot be told from a damaged one: libjxl only
        // says that it failed, and the message says both.
        let error = decodeError(name)
        guard case .corrupt = error?.reason else {
            Issue.record("\(name): expected .corrupt, got \(String(describing: error))")
            return
        }
        #expect(error?.description.hasPrefix(fixture(name) + ": corrupt image") == true, "\(String(describing: error))")
        if name.hasSuffix(".jxl") {
            #expect(error?.description.contains("damaged or cut short") == true, "\(String(describing: error))")
        }
        #expect(ImageDecoder.sniff(path: fixture(name)), "recognised by its signature")
    }

    @Test("every byte-prefix of a HEIC / AVIF / JPEG XL fails cleanly (no crash, no hang)",
          arguments: ["cat.heic", "cat.avif", "cat.jxl", "cat_container.jxl"])
    func prefixes(name: String) throws {
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture(name))))
        for length in [1, 2, 11, 12, 24, 40, 100, 300, 1000, bytes.count / 4, bytes.count - 1] {
            do {
                _ = try ImageDecoder.decode(data: Array(bytes.prefix(length)), name: name)
                Issue.record("\(name): \(length) of \(bytes.count) bytes decoded")
            } catch {
                #expect(error.path == name)
            }
        }
    }

    @Test("video and other ISO-BMFF files are not images")
    func notImages() {
        // An MP4 `ftyp` (isom/mp42) and a QuickTime one: same box layout, no image brand.
        for brands in ["isom\0\0\u{2}\0isomiso2mp41", "qt  \0\0\0\0qt  "] {
            let box = Array(brands.utf8)
            let bytes = [0, 0, 0, UInt8(8 + box.count)] + Array("ftyp".utf8) + box + [UInt8](repeating: 0, count: 64)
            do {
                _ = try ImageDecoder.decode(data: bytes, name: "clip.mp4")
                Issue.record("an ftyp '\(brands.prefix(4))' decoded")
            } catch {
                #expect(error.reason == .notAnImage)
                #expect(error.description.contains("HEIC/HEIF, AVIF or JPEG XL"))
            }
        }
    }

    @Test("HEIC, AVIF and JPEG XL decode concurrently with identical results")
    func concurrent() async throws {
        let names = ["cat.heic", "cat.avif", "cat.jxl", "cat_thumb.heic", "truncated.heic"]
        var expected: [String: [UInt8]] = [:]
        for name in names where !name.hasPrefix("truncated") {
            expected[name] = try ImageDecoder.decode(path: fixture(name)).pixels
        }
        let reference = expected
        let failures = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var bad = 0
                    for round in 0..<6 {
                        let name = names[(worker + round) % names.count]
                        do throws(DecodeError) {
                            let image = try ImageDecoder.decode(path: fixture(name))
                            if image.pixels != reference[name] { bad += 1 }
                        } catch {
                            if name != "truncated.heic" || error.reason != .truncated { bad += 1 }
                        }
                    }
                    return bad
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }

    // MARK: EXIF facts

    static let liberty = (latitude: 40 + 41.0 / 60 + 21.4 / 3600, longitude: -(74 + 2.0 / 60 + 40.2 / 3600))
    static let sydney = (latitude: -(33 + 51.0 / 60 + 31.0 / 3600), longitude: 151 + 12.0 / 60 + 54.8 / 3600)

    @Test("capture time with offset, camera and GPS from each container (decode and header-only read)",
          arguments: ["exif.jpg", "exif.heic", "exif.avif", "exif.png", "exif.webp", "exif.tiff"])
    func exifFacts(name: String) throws {
        let place = name == "exif.jpg" ? Self.sydney : Self.liberty
        let decoded = try ImageDecoder.decode(path: fixture(name)).metadata
        let headerOnly = try ImageDecoder.metadata(path: fixture(name))
        #expect(decoded == headerOnly, "\(name): \(decoded) vs \(headerOnly)")
        for meta in [decoded, headerOnly] {
            #expect(meta.capturedAt == "2023-06-14T09:41:05+02:00", "\(name): \(meta)")
            #expect(meta.cameraMake == "Apple" && meta.cameraModel == "iPhone 13", "\(name): \(meta)")
            #expect(abs((meta.gpsLatitude ?? 0) - place.latitude) < 1e-6, "\(name): \(meta)")
            #expect(abs((meta.gpsLongitude ?? 0) - place.longitude) < 1e-6, "\(name): \(meta)")
            #expect(meta.pixelWidth == 64 && meta.pixelHeight == 48, "\(name): \(meta)")
        }
    }

    @Test("files without those facts give none (only the pixel size)",
          arguments: ["cat.heic", "cat.avif", "exif_orient_only.heic", "cat.jxl", "red.jpg", "green.png",
                      "yellow.webp", "cyan.tiff", "magenta.bmp", "blue.gif"])
    func noFacts(name: String) throws {
        let meta = try ImageDecoder.metadata(path: fixture(name))
        let decoded = try ImageDecoder.decode(path: fixture(name))
        #expect(meta.capturedAt == nil && meta.cameraMake == nil && meta.cameraModel == nil, "\(name): \(meta)")
        #expect(meta.gpsLatitude == nil && meta.gpsLongitude == nil, "\(name): \(meta)")
        #expect(meta.pixelWidth == decoded.width && meta.pixelHeight == decoded.height, "\(name): \(meta)")
        #expect(decoded.metadata == meta)
    }

    @Test("the header-only read reports the size after orientation")
    func metadataOrientation() throws {
        let jpeg = try ImageDecoder.metadata(path: fixture("orient6.jpg"))  // stored 120x80, EXIF 6
        #expect(jpeg.pixelWidth == 80 && jpeg.pixelHeight == 120, "\(jpeg)")
        let heic = try ImageDecoder.metadata(path: fixture("cat_irot.heic"))  // stored 300x451, irot
        #expect(heic.pixelWidth == 451 && heic.pixelHeight == 300, "\(heic)")
    }

    @Test("the header-only read of bad files throws typed errors naming the file",
          arguments: [("missing.heic", DecodeError.Reason.notFound), ("text.jpg", .notAnImage),
                      ("zero.jpg", .emptyFile), ("truncated.heic", .truncated)])
    func metadataErrors(name: String, reason: DecodeError.Reason) {
        do {
            _ = try ImageDecoder.metadata(path: fixture(name))
            Issue.record("\(name): metadata read")
        } catch {
            #expect(error.reason == reason, "\(name): \(error)")
            #expect(error.description.contains(name))
        }
    }

    @Test("PhotoMetadata round-trips through JSON; the default is empty")
    func codable() throws {
        let meta = try ImageDecoder.metadata(path: fixture("exif.heic"))
        let back = try JSONDecoder().decode(PhotoMetadata.self, from: try JSONEncoder().encode(meta))
        #expect(back == meta)
        #expect(DecodedImage(width: 1, height: 1, pixels: []).metadata == .empty)
    }
}
