"""opensms-async: the asyncio SDK for the BICS OpenSMS API."""
