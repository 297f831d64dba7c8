from services.inbound.main import main

main()
