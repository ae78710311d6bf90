"""Record Access Control Point 0x2A52 (GATT Specification Supplement §3.186): ask a device for
its stored records and read the answers."""
from protocols.errors import ProtocolError
from protocols.gatt_health.codec import Reader, u16_bytes

REPORT_STORED_RECORDS = 0x01
DELETE_STORED_RECORDS = 0x02
ABORT_OPERATION = 0x03
REPORT_NUMBER_OF_RECORDS = 0x04
NUMBER_OF_RECORDS_RESPONSE = 0x05
RESPONSE_CODE = 0x06

OP_NULL = 0x00
OP_ALL = 0x01
OP_LESS_OR_EQUAL = 0x02
OP_GREATER_OR_EQUAL = 0x03
OP_RANGE = 0x04
OP_FIRST = 0x05
OP_LAST = 0x06

SUCCESS = 0x01
RESPONSE_WORDS = {1: "success", 2: "op_code_not_supported", 3: "invalid_operator",
                  4: "operator_not_supported", 5: "invalid_operand", 6: "no_records_found",
                  7: "abort_unsuccessful", 8: "procedure_not_completed", 9: "operand_not_supported"}


def request(op_code, operator=OP_ALL, operand=b""):
    """A request to write to the control point, e.g. request(REPORT_STORED_RECORDS) = 01 01."""
    return bytes((op_code, operator)) + bytes(operand)


def report_stored_records(operator=OP_ALL, operand=b""):
    return request(REPORT_STORED_RECORDS, operator, operand)


def report_number_of_records(operator=OP_ALL):
    return request(REPORT_NUMBER_OF_RECORDS, operator)


def decode_request(data):
    """For simulators: -> (op_code, operator, operand bytes)."""
    if len(data) < 2:
        raise ProtocolError("RACP request too short", "invalid_reading")
    return data[0], data[1], bytes(data[2:])


def decode_response(data):
    """An indication on the control point -> {"op": "response", "request": op code,
    "code": int, "result": word} or {"op": "count", "count": n}."""
    r = Reader(data, "RACP response")
    op_code = r.u8()
    operator = r.u8()
    if operator != OP_NULL:
        raise ProtocolError("RACP response: operator must be null, got %d" % operator, "invalid_reading")
    if op_code == RESPONSE_CODE:
        req = r.u8()
        code = r.u8()
        out = {"op": "response", "request": req, "code": code,
               "result": RESPONSE_WORDS.get(code, "reserved")}
    elif op_code == NUMBER_OF_RECORDS_RESPONSE:
        out = {"op": "count", "count": r.u16()}
    else:
        raise ProtocolError("RACP: op code %d is not a response" % op_code, "invalid_reading")
    if r.rest():
        raise ProtocolError("RACP response: trailing bytes", "invalid_reading")
    return out


def response_code(request_op, code):
    return bytes((RESPONSE_CODE, OP_NULL, request_op, code))


def number_of_records(count):
    return bytes((NUMBER_OF_RECORDS_RESPONSE, OP_NULL)) + u16_bytes(count)
