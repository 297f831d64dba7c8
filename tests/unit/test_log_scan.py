"""The end-to-end log scan finds a number in either written form and a message
text, only in what was written during the session, and not inside longer digits."""

from pathlib import Path

from tests.support.log_scan import personal_data_in_logs


def test_the_scan_finds_numbers_and_texts_written_during_the_session(tmp_path: Path) -> None:
    log = tmp_path / "inbound.log"
    log.write_text('{"event": "before the session", "to": "+79161234567"}\n')
    before = {log: log.stat().st_size}
    with log.open("a") as out:
        out.write('{"event": "masked", "to": "+7916*****67"}\n')
        out.write('{"event": "sent", "wa_id": "79161234567"}\n')
        out.write('{"event": "an offset", "offset": 179161234567000}\n')
        out.write('{"body": "Reminder: the workshop starts at 10:00"}\n')

    found = personal_data_in_logs(
        tmp_path, before, ["+79161234567"], ["Reminder: the workshop starts at 10:00"]
    )

    assert [line.split(": ", 1)[1].split(" in ")[0] for line in found] == [
        "'79161234567'",
        "'Reminder: the workshop starts at 10:00'",
    ]


def test_the_scan_finds_a_whatsapp_user_id_whole_but_not_masked(tmp_path: Path) -> None:
    log = tmp_path / "inbound.log"
    log.write_text(
        '{"event": "masked", "user": "RU.******************67"}\n'
        '{"event": "linked", "user": "RU.12345678901234567867"}\n'
    )

    found = personal_data_in_logs(tmp_path, {}, ["RU.12345678901234567867"], [])

    assert [line.split(": ", 1)[1].split(" in ")[0] for line in found] == [
        "'RU.12345678901234567867'"
    ]
