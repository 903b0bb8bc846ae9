"""Test doubles. Everything here stands in for something real (a phone, adb) and is used only by the tests."""
