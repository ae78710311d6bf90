"""Receipt documents (a JSON list of blocks) and the built-in templates that produce them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.printer.render import DocumentError, format_vnd

_ALIGN = {"type": "string", "enum": ["left", "center", "right"], "description": "Horizontal alignment."}
_BOLD = {"type": "boolean", "description": "Bold face."}
_SIZE = {"type": "integer", "minimum": 1, "maximum": 3, "description": "Text size multiplier."}

BLOCK_KINDS = ("text", "rule", "columns", "qr", "barcode", "image", "feed", "cut")
BLOCK_SCHEMA: dict[str, Any] = {
    # Checked before oneOf, so a missing or misspelt kind is named as such.
    "type": "object", "required": ["type"],
    "properties": {"type": {"enum": list(BLOCK_KINDS), "description": "Block kind."}},
    "oneOf": [
        {"type": "object", "description": "A paragraph of text, wrapped to the paper width.",
         "properties": {"type": {"const": "text", "description": "Block kind."},
                        "text": {"type": "string", "maxLength": 4000,
                                 "description": "The text (UTF-8, any Vietnamese)."},
                        "align": _ALIGN, "bold": _BOLD, "size": _SIZE},
         "required": ["type", "text"], "additionalProperties": False},
        {"type": "object", "description": "A horizontal rule.",
         "properties": {"type": {"const": "rule", "description": "Block kind."},
                        "style": {"type": "string", "enum": ["solid", "dashed"],
                                  "description": "Line style."}},
         "required": ["type"], "additionalProperties": False},
        {"type": "object", "description": "A label on the left and a right-aligned value.",
         "properties": {"type": {"const": "columns", "description": "Block kind."},
                        "label": {"type": "string", "maxLength": 400, "description": "Left text."},
                        "value": {"type": "string", "maxLength": 200, "description": "Right-aligned text."},
                        "bold": _BOLD, "size": _SIZE},
         "required": ["type", "label", "value"], "additionalProperties": False},
        {"type": "object", "description": "A QR code (printed natively by the printer).",
         "properties": {"type": {"const": "qr", "description": "Block kind."},
                        "data": {"type": "string", "minLength": 1, "maxLength": 1000,
                                 "description": "QR content."},
                        "size": {"type": "integer", "minimum": 1, "maximum": 16,
                                 "description": "Module size in dots."},
                        "align": _ALIGN},
         "required": ["type", "data"], "additionalProperties": False},
        {"type": "object", "description": "A 1D barcode with its text below.",
         "properties": {"type": {"const": "barcode", "description": "Block kind."},
                        "data": {"type": "string", "minLength": 1, "maxLength": 80,
                                 "description": "Barcode content."},
                        "symbology": {"type": "string",
                                      "enum": ["CODE128", "CODE39", "EAN13", "EAN8", "UPC-A", "ITF",
                                               "CODABAR"],
                                      "description": "Barcode system (default CODE128)."},
                        "height": {"type": "integer", "minimum": 1, "maximum": 255,
                                   "description": "Bar height in dots."}},
         "required": ["type", "data"], "additionalProperties": False},
        {"type": "object", "description": "A picture (logo, signature), dithered to 1 bit.",
         "properties": {"type": {"const": "image", "description": "Block kind."},
                        "png": {"type": "string", "maxLength": 2_000_000, "description": "Base64 PNG."},
                        "align": _ALIGN},
         "required": ["type", "png"], "additionalProperties": False},
        {"type": "object", "description": "Feed blank lines.",
         "properties": {"type": {"const": "feed", "description": "Block kind."},
                        "lines": {"type": "integer", "minimum": 0, "maximum": 20,
                                  "description": "Lines to feed."}},
         "required": ["type"], "additionalProperties": False},
        {"type": "object", "description": "Cut the paper (added at the end when missing).",
         "properties": {"type": {"const": "cut", "description": "Block kind."},
                        "partial": {"type": "boolean", "description": "Partial cut (leave a tab)."}},
         "required": ["type"], "additionalProperties": False},
    ]
}

DOCUMENT_SCHEMA: dict[str, Any] = {
    "type": "object", "description": "A receipt: blocks printed top to bottom.",
    "properties": {"blocks": {"type": "array", "items": BLOCK_SCHEMA, "minItems": 1, "maxItems": 200,
                              "description": "The blocks, in order."}},
    "required": ["blocks"], "additionalProperties": False,
}

STATION = "Trạm Công dân số"


def _money(value: Any, field: str) -> str:
    try:
        return format_vnd(float(value))
    except (TypeError, ValueError):
        raise DocumentError(f"data.{field}: not an amount: {value!r}", f"data.{field}") from None


def payment_receipt(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Payment receipt: service lines, total as `150.000 ₫`, transaction ids, VietQR if given."""
    if "amount" not in data:
        raise DocumentError("payment_receipt needs data.amount", "data.amount")
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": str(data.get("station", STATION)), "align": "center", "bold": True},
    ]
    if data.get("address"):
        blocks.append({"type": "text", "text": str(data["address"]), "align": "center"})
    blocks += [
        {"type": "text", "text": str(data.get("title", "BIÊN NHẬN THANH TOÁN")), "align": "center",
         "bold": True, "size": 2},
        {"type": "rule", "style": "dashed"},
    ]
    for i, item in enumerate(data.get("items") or []):
        blocks.append({"type": "columns", "label": str(item.get("label", "")),
                       "value": _money(item.get("amount", 0), f"items[{i}].amount")})
    blocks += [
        {"type": "columns", "label": "Tổng cộng", "value": _money(data["amount"], "amount"), "bold": True},
        {"type": "rule", "style": "dashed"},
    ]
    for key, label in (("method", "Hình thức"), ("transaction_id", "Mã giao dịch"),
                       ("reference", "Mã tham chiếu"), ("terminal_id", "Mã thiết bị"),
                       ("time", "Thời gian"), ("status", "Trạng thái")):
        if data.get(key):
            blocks.append({"type": "columns", "label": label, "value": str(data[key])})
    if data.get("vietqr"):
        blocks += [{"type": "text", "text": "Quét mã VietQR để thanh toán", "align": "center"},
                   {"type": "qr", "data": str(data["vietqr"]), "size": 5, "align": "center"}]
    if data.get("transaction_id"):
        blocks.append({"type": "barcode", "data": str(data["transaction_id"])[:40], "symbology": "CODE128",
                       "height": 60})
    blocks += [{"type": "text", "text": str(data.get("footer", "Cảm ơn quý khách! Vui lòng giữ biên nhận.")),
                "align": "center"},
               {"type": "cut"}]
    return blocks


# Normal ranges printed on the slip (adults). BMI uses the WHO Asia-Pacific cut-offs that
# Vietnamese clinics apply.
RANGES = {
    "blood_pressure": "< 120/80 mmHg",
    "spo2": "95 – 100 %",
    "pulse": "60 – 100 lần/phút",
    "bmi": "18,5 – 22,9",
}


def _assess_bp(sys_: float, dia: float) -> str:
    if sys_ >= 140 or dia >= 90:
        return "Cao"
    if sys_ >= 120 or dia >= 80:
        return "Hơi cao"
    if sys_ < 90 or dia < 60:
        return "Thấp"
    return "Bình thường"


def _decimal(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def health_slip(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Health result slip: blood pressure, SpO2, pulse, weight, height, BMI with normal ranges."""
    blocks: list[dict[str, Any]] = [
        {"type": "text", "text": str(data.get("station", STATION)), "align": "center", "bold": True},
        {"type": "text", "text": "KẾT QUẢ ĐO SỨC KHỎE", "align": "center", "bold": True, "size": 2},
    ]
    if data.get("time"):
        blocks.append({"type": "text", "text": f"Thời gian: {data['time']}", "align": "center"})
    blocks.append({"type": "rule"})
    bp = data.get("blood_pressure")
    if isinstance(bp, Mapping) and "systolic" in bp and "diastolic" in bp:
        s, d = float(bp["systolic"]), float(bp["diastolic"])
        blocks += [{"type": "columns", "label": "Huyết áp", "value": f"{s:.0f}/{d:.0f} mmHg", "bold": True},
                   {"type": "columns", "label": f"  Bình thường {RANGES['blood_pressure']}",
                    "value": _assess_bp(s, d)}]
        if bp.get("pulse") is not None:
            data = {**data, "pulse": bp["pulse"]}
    if data.get("pulse") is not None:
        p = float(data["pulse"])
        blocks += [{"type": "columns", "label": "Nhịp tim", "value": f"{p:.0f} lần/phút", "bold": True},
                   {"type": "columns", "label": f"  Bình thường {RANGES['pulse']}",
                    "value": "Bình thường" if 60 <= p <= 100 else ("Nhanh" if p > 100 else "Chậm")}]
    if data.get("spo2") is not None:
        o = float(data["spo2"])
        blocks += [{"type": "columns", "label": "SpO2", "value": f"{o:.0f} %", "bold": True},
                   {"type": "columns", "label": f"  Bình thường {RANGES['spo2']}",
                    "value": "Bình thường" if o >= 95 else "Thấp"}]
    weight = data.get("weight_kg")
    height = data.get("height_cm")
    if weight is not None:
        blocks.append({"type": "columns", "label": "Cân nặng", "value": f"{_decimal(float(weight))} kg",
                       "bold": True})
    if height is not None:
        blocks.append({"type": "columns", "label": "Chiều cao", "value": f"{_decimal(float(height))} cm",
                       "bold": True})
    bmi = data.get("bmi")
    if bmi is None and weight is not None and height:
        bmi = float(weight) / (float(height) / 100) ** 2
    if bmi is not None:
        b = float(bmi)
        verdict = ("Thiếu cân" if b < 18.5 else "Bình thường" if b < 23
                   else "Thừa cân" if b < 25 else "Béo phì")
        blocks += [{"type": "columns", "label": "BMI", "value": _decimal(b), "bold": True},
                   {"type": "columns", "label": f"  Bình thường {RANGES['bmi']}", "value": verdict}]
    blocks += [{"type": "rule"},
               {"type": "text", "text": str(data.get("footer",
                "Kết quả chỉ để tham khảo. Vui lòng mang phiếu này khi gặp bác sĩ.")), "align": "center"},
               {"type": "cut"}]
    return blocks


def test_page(paper_mm: int) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": "TRANG IN THỬ", "align": "center", "bold": True, "size": 2},
        {"type": "text", "text": f"Khổ giấy {paper_mm} mm", "align": "center"},
        {"type": "rule"},
        {"type": "text", "text": "Tiếng Việt: ă â đ ê ô ơ ư — Ầ Ẫ Ậ ộ ự ỹ Đ"},
        {"type": "columns", "label": "Số tiền mẫu", "value": format_vnd(150000)},
        {"type": "qr", "data": "HALSVC-TEST", "size": 4},
        {"type": "barcode", "data": "HALSVC01", "symbology": "CODE128", "height": 50},
        {"type": "cut"},
    ]


TEMPLATES = {"payment_receipt": payment_receipt, "health_slip": health_slip}
