// The evaluation report as one self-contained HTML file a person reads at a glance: the summary
// table, the precision-at-rank and precision-recall curves (inline SVG), per-class bars (worst
// first), and example queries with their top results, failures first (thumbnails embedded as
// data URIs, green frame = relevant, red = not). No scripts, no external files.
import Foundation
import LookalikeCatalogue
import LookalikeEngine
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

/// Thumbnails for the report: the network's 224 px centre crop of each image, as JPEG.
public struct ReportThumbnails: Sendable {
    let catalogue: Catalogue
    public init(catalogue: Catalogue) { self.catalogue = catalogue }

    func dataURI(path: String) -> String? {
        guard let image = try? ImageDecoder.decode(path: path), let jpeg = PreviewEncoder.jpeg(image, quality: 60) else { return nil }
        return "data:image/jpeg;base64," + Data(jpeg).base64EncodedString()
    }
}

public enum EvaluationHTML {
    /// Where the last report of a library is kept for `lookalike serve` (GET /report).
    public static func libraryCopy(for catalogue: Catalogue) -> URL { DerivedFiles.evaluationReport(for: catalogue) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func f(_ v: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", v) }

    /// A line chart of y values (0..1) against x labels.
    static func lineChart(title: String, xLabel: String, points: [(x: Double, y: Double)], xMax: Double, ticks: [Double]) -> String {
        let w = 420.0, h = 260.0, left = 48.0, bottom = 36.0, top = 24.0, right = 16.0
        func px(_ x: Double) -> Double { left + (x / xMax) * (w - left - right) }
        func py(_ y: Double) -> Double { top + (1 - y) * (h - top - bottom) }
        var svg = "<svg viewBox='0 0 \(Int(w)) \(Int(h))' class='chart' role='img' aria-label='\(escape(title))'>"
        svg += "<text x='\(Int(w / 2))' y='16' text-anchor='middle' class='t'>\(escape(title))</text>"
        for g in stride(from: 0.0, through: 1.0, by: 0.2) {
            svg += "<line x1='\(px(0))' x2='\(px(xMax))' y1='\(py(g))' y2='\(py(g))' class='grid'/>"
            svg += "<text x='\(left - 6)' y='\(py(g) + 4)' text-anchor='end'>\(f(g, 1))</text>"
        }
        for t in ticks { svg += "<text x='\(px(t))' y='\(h - bottom + 16)' text-anchor='middle'>\(t == t.rounded() ? String(Int(t)) : f(t, 1))</text>" }
        svg += "<text x='\(Int(w / 2))' y='\(Int(h - 4))' text-anchor='middle'>\(escape(xLabel))</text>"
        let path = points.map { "\(f(px($0.x), 1)),\(f(py($0.y), 1))" }.joined(separator: " ")
        svg += "<polyline points='\(path)' class='line'/>"
        for p in points { svg += "<circle cx='\(f(px(p.x), 1))' cy='\(f(py(p.y), 1))' r='2.5' class='dot'><title>\(f(p.y))</title></circle>" }
        return svg + "</svg>"
    }

    /// Horizontal bars of per-class precision.
    static func classBars(_ classes: [ClassOutcome], k: Int) -> String {
        let rowH = 16.0, w = 640.0, labelW = 170.0
        let h = Double(classes.count) * rowH + 24
        var svg = "<svg viewBox='0 0 \(Int(w)) \(Int(h))' class='bars' role='img' aria-label='per-class precision'>"
        for (i, c) in classes.enumerated() {
            let y = 8 + Double(i) * rowH
            let bw = c.precisionAtK * (w - labelW - 60)
            let hue = Int(c.precisionAtK * 120)
            svg += "<text x='\(labelW - 6)' y='\(y + 11)' text-anchor='end'>\(escape(c.label))</text>"
            svg += "<rect x='\(labelW)' y='\(y + 2)' width='\(f(bw, 1))' height='\(rowH - 4)' fill='hsl(\(hue),60%,48%)'><title>P@\(k) \(f(c.precisionAtK)) · mAP \(f(c.map)) · \(c.queries) queries</title></rect>"
            svg += "<text x='\(f(labelW + bw + 4, 1))' y='\(y + 11)'>\(f(c.precisionAtK, 2))</text>"
        }
        return svg + "</svg>"
    }

    public static func render(_ r: EvaluationReport, thumbnails: ReportThumbnails, examples: Int = 12) throws -> String {
        let summaries = try thumbnails.catalogue.allSummaries()
        var uriCache: [Int64: String] = [:]
        func thumb(_ id: Int64) -> String {
            if let cached = uriCache[id] { return cached }
            let uri = summaries[id].flatMap { thumbnails.dataURI(path: $0.path) } ?? ""
            uriCache[id] = uri
            return uri
        }
        let k = r.k
        var html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Lookalike evaluation: \(escape(r.method)) on \(escape(URL(fileURLWithPath: r.library).lastPathComponent))</title>
            <style>
            body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1d2430}
            main{max-width:1180px;margin:0 auto;padding:24px}
            h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px}
            .sub{color:#5b6575} .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
            .card{background:#fff;border-radius:10px;padding:12px 16px;box-shadow:0 1px 3px #0002;min-width:110px}
            .card b{display:block;font-size:24px} .card span{color:#5b6575;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
            .charts{display:flex;flex-wrap:wrap;gap:16px} .chart{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;width:420px;max-width:100%}
            .bars{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;width:100%;max-width:640px}
            svg text{font-size:11px;fill:#3b4453} svg .t{font-size:13px;font-weight:600}
            .grid{stroke:#e3e6eb} .line{fill:none;stroke:#2f6fde;stroke-width:2} .dot{fill:#2f6fde}
            table{border-collapse:collapse;background:#fff;border-radius:10px;overflow:hidden;box-shadow:0 1px 3px #0002}
            td,th{padding:6px 10px;text-align:right;border-bottom:1px solid #eef0f3} th{background:#eef2f8} td:first-child,th:first-child{text-align:left}
            .q{display:flex;gap:10px;align-items:flex-start;background:#fff;border-radius:10px;padding:10px;margin:10px 0;box-shadow:0 1px 3px #0002;overflow-x:auto}
            .q figure{margin:0;text-align:center;font-size:11px;color:#5b6575;flex:none}
            .q img{width:84px;height:84px;object-fit:cover;border-radius:6px;border:3px solid #ccc;display:block}
            .q .query img{border-color:#2f6fde;width:108px;height:108px} .q .hit img{border-color:#2ea44f} .q .miss img{border-color:#d73a49}
            .meta{font-size:12px;color:#5b6575;flex:none;width:120px;word-break:break-all}
            </style></head><body><main>
            <h1>Retrieval evaluation</h1>
            <div class="sub">\(escape(r.library)) · \(r.images) images · \(r.queries) queries · method <b>\(escape(r.method))</b> · re-ranking <b>\(escape(r.reranking))</b> · clutter: \(escape(r.clutter)) · AP over the \(escape(r.apOver))</div>
            <div class="cards">
            <div class="card"><span>P@\(k)</span><b>\(f(r.precision_at_k))</b></div>
            <div class="card"><span>R@\(k)</span><b>\(f(r.recall_at_k))</b></div>
            <div class="card"><span>F1@\(k)</span><b>\(f(r.f1_at_k))</b></div>
            <div class="card"><span>mAP</span><b>\(f(r.map))</b></div>
            <div class="card"><span>ms / query</span><b>\(f(r.ms_per_query, 2))</b></div>
            <div class="card"><span>time vs plain exact</span><b>\(r.exact_ms_per_query > 0 ? f(r.ms_per_query / r.exact_ms_per_query, 2) + "x" : "-")</b></div>
            </div>
            <div class="charts">
            """
        html += lineChart(title: "Precision at rank (mean over queries)", xLabel: "rank",
                          points: r.precision_at_rank.enumerated().map { (Double($0.offset + 1), $0.element) },
                          xMax: Double(k), ticks: Array(Set([1, k / 4, k / 2, 3 * k / 4, k].filter { $0 > 0 })).sorted().map(Double.init))
        html += lineChart(title: "Precision-recall (interpolated)", xLabel: "recall",
                          points: r.precision_at_recall.enumerated().map { (Double($0.offset) / 10, $0.element) },
                          xMax: 1, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1])
        html += "</div><h2>Classes, worst first</h2>"
        let shown = r.per_class.count > 40 ? Array(r.per_class.prefix(25)) + Array(r.per_class.suffix(10)) : r.per_class
        if r.per_class.count > 40 { html += "<p class='sub'>The 25 worst and the 10 best of \(r.per_class.count) classes.</p>" }
        html += classBars(shown, k: k)
        html += "<h2>Examples: the worst queries first, then the best</h2>"
        let sorted = r.per_query.sorted { ($0.averagePrecision, $0.path) < ($1.averagePrecision, $1.path) }
        let picked = Array(sorted.prefix(examples * 2 / 3)) + Array(sorted.suffix(examples - examples * 2 / 3))
        let shownTop = min(k, 10)
        for q in picked {
            html += "<div class='q'><figure class='query'><img src='\(thumb(q.id))' alt=''><figcaption>\(escape(q.label))</figcaption></figure>"
            html += "<div class='meta'>\(escape(URL(fileURLWithPath: q.path).lastPathComponent))<br>P@\(k) \(f(q.precisionAtK, 2))<br>AP \(f(q.averagePrecision, 2))<br>\(q.relevantCount) relevant</div>"
            for (id, relevant) in zip(q.top.prefix(shownTop), q.topRelevant.prefix(shownTop)) {
                let label = summaries[id]?.label ?? "?"
                html += "<figure class='\(relevant ? "hit" : "miss")'><img src='\(thumb(id))' alt='' loading='lazy'><figcaption>\(escape(label))</figcaption></figure>"
            }
            html += "</div>"
        }
        html += "<h2>All classes</h2><table><tr><th>label</th><th>queries</th><th>P@\(k)</th><th>R@\(k)</th><th>mAP</th></tr>"
        for c in r.per_class {
            html += "<tr><td>\(escape(c.label))</td><td>\(c.queries)</td><td>\(f(c.precisionAtK))</td><td>\(f(c.recallAtK))</td><td>\(f(c.map))</td></tr>"
        }
        html += "</table><p class='sub'>Made by <code>lookalike eval</code>.</p></main></body></html>\n"
        return html
    }
}
