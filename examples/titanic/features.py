"""The Titanic features, shared by training.py and score.py so both read passengers the same way."""
FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
DROPPED = ["PassengerId", "Name", "Cabin", "Ticket"]
SEX_CODES = {"female": 0, "male": 1}
EMBARKED_CODES = {"S": 0, "Q": 1, "C": 2}
