from services.consent.main import main

main()
